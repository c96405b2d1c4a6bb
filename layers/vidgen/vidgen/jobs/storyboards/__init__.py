"""Storyboards (a product in, one video job per LLM-written scene out): the use cases.

- `submit`: submit (every scene paid in one transaction) and cancel
- `writer` and `llm`: the scenes, from an OpenAI-compatible model or the built-in ones
- `steps`: the storyboard state machine's steps (write, create the scene jobs, start them, check, settle, notify)
- `views`: how a storyboard is shown to its owner, and the reads
- `sweep`: moving stuck storyboards on
"""
