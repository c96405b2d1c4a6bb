"""The use cases: everything the functions do, with no event shapes in sight.

- `submit`: submit and cancel a job (the credit transaction, the execution start)
- `queries`: read a job, list jobs, credits and usage
- `tasks`: the state machine's steps (create the provider task, poll, finalize, fail)
- `callbacks`: provider callbacks
- `sweep`: the scheduled recovery of anything stuck
- `notifications`: the signed webhook a client gets when its job ends
- `accounts`: who a caller is, and the operator's users and credit grants
- `storyboards`: a product in, LLM-written scenes out, one job per scene (its own package)
"""
