/** The default VJP rule table: exact gradients of every op glassbox can differentiate. */
import type { RuleTable } from '../types.js';
import { activationRules } from './activation.js';
import { convRules } from './conv.js';
import { deconvRules } from './deconv.js';
import { elementwiseRules } from './elementwise.js';
import { extremaRules } from './extrema.js';
import { linearRules } from './linear.js';
import { normalizeRules } from './normalize.js';
import { padRules } from './pad.js';
import { poolRules } from './pool.js';
import { resampleRules } from './resample.js';
import { shapeRules } from './shape.js';

export const defaultRules = {
  ...elementwiseRules, ...linearRules, ...shapeRules, ...convRules, ...normalizeRules,
  ...activationRules, ...deconvRules, ...extremaRules, ...padRules, ...poolRules, ...resampleRules,
} satisfies RuleTable;
