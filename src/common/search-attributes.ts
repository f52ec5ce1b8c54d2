import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/** Custom search attributes, registered on the dev server by the sandbox and listed in the README. */
export const NnoeCluster = defineSearchAttributeKey('NnoeCluster', SearchAttributeType.KEYWORD);
export const NnoeRunbook = defineSearchAttributeKey('NnoeRunbook', SearchAttributeType.KEYWORD);
export const NnoeBackupSet = defineSearchAttributeKey('NnoeBackupSet', SearchAttributeType.KEYWORD);

export const SEARCH_ATTRIBUTE_KEYS = [NnoeCluster, NnoeRunbook, NnoeBackupSet];

export const TASK_QUEUE_DEFAULT = 'nnoe-dr';
/** Host-local activities of one node run on that node's own queue. */
export function nodeTaskQueue(base: string, node: string): string {
  return `${base}.node.${node}`;
}
