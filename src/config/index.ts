// Public face of src/config.
export { loadConfig, parseConfig } from './load.js';
export { ConfigError } from './errors.js';
export { globToRegExp, isExemptPath } from './glob.js';
export { parseDuration, parseSize, parseMode } from './units.js';
export * from './types.js';
