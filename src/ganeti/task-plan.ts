/**
 * The host's questions to the task table (helper/plan/decide.ts, the helper's own decision):
 * before the helper knows the OS family, a task counts as running for whichever family it
 * supports, unless OSFAMILY is given.
 */
import type { DecisionInput } from '../../helper/plan/decide.ts';
import { OS_FAMILIES, type OsFamily } from '../../helper/plan/families.ts';
import type { ImageProperties } from '../../helper/plan/properties.ts';
import type { OsParams } from './params.ts';

function knownFamily(value: string | undefined): OsFamily | undefined {
  return OS_FAMILIES.find((f) => f === value);
}

/** The decision input of a deployment, from its parameters and merged properties. */
export function hostDecisionInput(params: OsParams | undefined, properties: ImageProperties): DecisionInput {
  return {
    properties,
    family: knownFamily(properties.OSFAMILY),
    inputs: {
      passwordOrKeys:
        params?.imgPasswd !== undefined || params?.imgPasswdHash !== undefined || params?.authKeys !== undefined,
      personality: (params?.imgPersonality.length ?? 0) > 0,
    },
  };
}
