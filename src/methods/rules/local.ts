/**
 * Local rules registered with their taxonomy coordinates: CEM's pertinent negatives and positives (what must be absent
 * and what suffices for the class) and CDRP's critical routing paths (which channels one prediction runs through).
 */
import { passive, type MethodInfo } from '../taxonomy.js';
import { cdrp } from './cdrp.js';
import { pertinentNegative, pertinentPositive } from './cem.js';

export { autoencoderLoss, cem, pertinentNegative, pertinentPositive, type CemMode, type CemOptions, type CemResult } from './cem.js';
export { cdrp, gatedGraph, type CdrpOptions, type CdrpResult, type GatedSite } from './cdrp.js';

const CEM_REFERENCE = 'Dhurandhar et al. 2018, Explanations based on the missing: towards contrastive explanations with pertinent negatives';

export const LOCAL_RULE_METHODS = {
  'cem-pn': {
    info: { title: 'CEM pertinent negative', reference: CEM_REFERENCE, taxonomy: passive('rules', 'local') },
    run: pertinentNegative,
  },
  'cem-pp': {
    info: { title: 'CEM pertinent positive', reference: CEM_REFERENCE, taxonomy: passive('rules', 'local') },
    run: pertinentPositive,
  },
  cdrp: {
    info: {
      title: 'Critical data routing paths',
      reference: 'Wang et al. 2018, Interpret neural networks by identifying critical data routing paths',
      taxonomy: passive('rules', 'local'),
      stochastic: true,
    },
    run: cdrp,
  },
} satisfies Record<string, { info: MethodInfo; run: (...args: never[]) => unknown }>;
