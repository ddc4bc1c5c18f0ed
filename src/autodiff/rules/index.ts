/** The default VJP rule table: exact gradients of every op glassbox can differentiate. */
import type { RuleTable } from '../types.js';
import { convRules } from './conv.js';
import { elementwiseRules } from './elementwise.js';
import { linearRules } from './linear.js';
import { normalizeRules } from './normalize.js';
import { shapeRules } from './shape.js';

export const defaultRules = { ...elementwiseRules, ...linearRules, ...shapeRules, ...convRules, ...normalizeRules } satisfies RuleTable;
