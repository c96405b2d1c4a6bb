// What the catalog (GET /v1/models) says about a request, as the API decides it: which mode the given images
// make, which parameters apply in that mode and which values they may take, and the price. The API prices
// every job itself; this only shows the same number before the click.

export const TOP_LEVEL = ['duration', 'aspect_ratio', 'mode'];

export function inferMode(model, images) {
  if (images.end_image) return 'flf2v';
  if (images.reference_images && images.reference_images.length) return 'ref2v';
  if (images.image) return model.kind === 'image' ? 'i2i' : 'i2v';
  return model.kind === 'image' ? 't2i' : 't2v';
}

export function appliesIn(rule, mode) {
  return !rule.only_modes || rule.only_modes.includes(mode);
}

export function allowedValues(model, mode, name, rule) {
  const forced = ((model.mode_rules || {})[mode] || {})[name];
  return forced ? rule.values.filter((v) => forced.includes(v)) : rule.values;
}

export function priceFor(model, mode, params) {
  const facts = { ...params, kind: mode };
  for (const rule of model.prices) {
    if (Object.entries(rule.when || {}).every(([key, value]) => facts[key] === value)) {
      // A rule prices a job flat (`credits`) or by its length (`credits_per_second` times the duration).
      return rule.credits_per_second !== undefined ? rule.credits_per_second * params.duration : rule.credits;
    }
  }
  return null;
}

export function priceRange(model) {
  const durations = ((model.parameters || {}).duration || {}).values || [];
  const prices = model.prices.flatMap((p) => (p.credits_per_second !== undefined
    ? [p.credits_per_second * Math.min(...durations), p.credits_per_second * Math.max(...durations)] : [p.credits]));
  const low = Math.min(...prices);
  const high = Math.max(...prices);
  return low === high ? `${low} credits` : `${low}–${high} credits`;
}
