/**
 * What a run shows in the Temporal UI: the one-line summary and Markdown details of a start
 * (CLI, client helpers, schedules, child workflows), the summary of each activity call, and the
 * current details of a running workflow (step table, the plan and the approve command).
 *
 * Pure and free of Node built-ins: the workflow bundle imports it too. Inputs carry no secrets
 * (config references only), and these functions show only fields named below, never the whole input.
 */

/** The fields a start's details show, in this order, with their labels. Anything else is left out. */
const DETAIL_FIELDS: Array<[key: string, label: string]> = [
  ['cluster', 'cluster'],
  ['setId', 'set'],
  ['strategy', 'strategy'],
  ['components', 'components'],
  ['targets', 'targets'],
  ['member', 'member'],
  ['node', 'node'],
  ['nodes', 'nodes'],
  ['targetRevision', 'target revision'],
  ['targetTime', 'target time'],
  ['clusterId', 'incarnation'],
  ['dryRun', 'dry run'],
  ['approved', 'approved up front'],
  ['approvalTimeout', 'approval timeout'],
  ['force', 'force'],
  ['revisionBump', 'revision bump'],
  ['restartAgents', 'restart agents'],
  ['republishAgents', 'republish agents'],
  ['restoreCache', 'restore cache'],
  ['onlineAgentCaches', 'online agent caches'],
  ['fromRevision', 'from revision'],
];

type Input = Record<string, unknown>;

const asInput = (input: unknown): Input => (input !== null && typeof input === 'object' ? (input as Input) : {});
const str = (value: unknown): string | undefined => (typeof value === 'string' && value.length > 0 ? value : undefined);
const list = (value: unknown): string | undefined => (Array.isArray(value) && value.length > 0 ? value.map(String).join(', ') : undefined);

/** "the newest complete set" when the input names none: the run picks it. */
const fromSet = (i: Input): string => (str(i.setId) ? `from ${String(i.setId)}` : 'from the newest complete set');
const dry = (i: Input): string => (i.dryRun === true ? 'dry run: ' : '');
const toTargets = (i: Input): string => (list(i.targets) ? ` to ${list(i.targets)}` : '');

/** Temporal documents 200 bytes as the limit of a summary: kept within it, so no start or command can be refused for it. */
export const SUMMARY_MAX_BYTES = 200;

/** The summary cut to SUMMARY_MAX_BYTES of UTF-8, ending with "…" when cut. */
export function fitSummary(text: string): string {
  const utf8Bytes = (cp: number) => (cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4);
  let total = 0;
  for (const ch of text) total += utf8Bytes(ch.codePointAt(0)!);
  if (total <= SUMMARY_MAX_BYTES) return text;
  let kept = '';
  let used = 3; // the ellipsis
  for (const ch of text) {
    used += utf8Bytes(ch.codePointAt(0)!);
    if (used > SUMMARY_MAX_BYTES) break;
    kept += ch;
  }
  return `${kept}…`;
}

/** One line per workflow type, in the runbook's words: "restore nnoe-prod from nnoe-prod-20261204-060000, all-members". */
export function runSummary(workflowType: string, rawInput: unknown): string {
  return fitSummary(describeRun(workflowType, rawInput));
}

function describeRun(workflowType: string, rawInput: unknown): string {
  const i = asInput(rawInput);
  const cluster = str(i.cluster) ?? 'every cluster';
  switch (workflowType) {
    case 'etcdBackupWorkflow':
      return `etcd backup of ${cluster}${toTargets(i)}${str(i.setId) ? ` (set ${String(i.setId)})` : ''}`;
    case 'backupSetWorkflow':
      return `backup set of ${cluster}${list(i.components) ? ` (${list(i.components)})` : ''}${toTargets(i)}`;
    case 'phpipamBackupWorkflow':
      return `phpIPAM backup of ${cluster} for set ${String(i.setId)}`;
    case 'agentCacheBackupWorkflow':
      return `agent cache backup of ${String(i.node)} (${cluster}) for set ${String(i.setId)}`;
    case 'pruneBackupSetsWorkflow':
      return `${dry(i)}prune backup sets of ${cluster}${list(i.targets) ? ` on ${list(i.targets)}` : ''}`;
    case 'etcdRestoreWorkflow':
      return `${dry(i)}restore ${cluster} ${fromSet(i)}, ${str(i.strategy) ?? 'all-members'}`;
    case 'phpipamRestoreWorkflow':
      return `${dry(i)}restore phpIPAM of ${cluster} ${fromSet(i)}`;
    case 'agentCacheRestoreWorkflow':
      return `${dry(i)}restore the agent cache of ${String(i.node)} (${cluster}) ${fromSet(i)}`;
    case 'nebulaRestoreWorkflow':
      return `${dry(i)}restore Nebula files of ${String(i.node)} (${cluster}) ${fromSet(i)}`;
    case 'agentHostRestoreWorkflow':
      return `${dry(i)}restore agent host state of ${String(i.node)} (${cluster}) ${fromSet(i)}`;
    case 'replaceEtcdMemberWorkflow':
      return `replace etcd member ${String(i.member)} of ${cluster}${i.force === true ? ' (forced)' : ''}`;
    case 'pointInTimeRestoreWorkflow': {
      const to = i.targetRevision !== undefined ? `revision ${String(i.targetRevision)}` : `time ${String(i.targetTime)}`;
      return `point-in-time restore of ${cluster} to ${to}, ${str(i.strategy) ?? 'all-members'}`;
    }
    case 'disasterRecoveryWorkflow':
      return `${dry(i)}disaster recovery of ${cluster} ${fromSet(i)}${list(i.components) ? ` (${list(i.components)})` : ''}`;
    case 'restoreDrillWorkflow':
      return `restore drill of ${cluster} ${fromSet(i)}`;
    case 'changeCaptureWorkflow':
      return `change capture of ${cluster}${i.fromRevision !== undefined ? ` from revision ${String(i.fromRevision)}` : ''}`;
    case 'checkAgentsWorkflow':
      return `check agents of ${cluster}${list(i.nodes) ? ` on ${list(i.nodes)}` : ''}`;
    case 'recoverAgentsWorkflow':
      return `${dry(i)}recover agents of ${cluster}${list(i.nodes) ? ` on ${list(i.nodes)}` : ''}`;
    case 'recoverAgentNodeWorkflow':
      return `recover agent node ${String(i.node)} of ${cluster}`;
    default:
      return `${words(workflowType.replace(/Workflow$/, ''))} of ${cluster}`;
  }
}

/** The inputs that matter, as a Markdown table (only the fields in DETAIL_FIELDS). */
export function runDetails(workflowType: string, rawInput: unknown, extra: Array<[string, string]> = []): string {
  const i = asInput(rawInput);
  const rows: Array<[string, string]> = [['runbook', `\`${workflowType}\``]];
  for (const [key, label] of DETAIL_FIELDS) {
    const value = i[key];
    if (value === undefined || value === null || value === '') continue;
    rows.push([label, Array.isArray(value) ? value.map(String).join(', ') : String(value)]);
  }
  return markdownTable(['input', 'value'], [...rows, ...extra]);
}

/** The node a node task queue (`<base>.node.<node>`) belongs to, or undefined for the management queue. */
export function nodeOfTaskQueue(taskQueue: string | undefined): string | undefined {
  const at = taskQueue?.lastIndexOf('.node.') ?? -1;
  return at >= 0 ? taskQueue!.slice(at + '.node.'.length) : undefined;
}

/** Activities whose name alone reads badly: the verb to use before the target. */
const ACTIVITY_VERBS: Record<string, string> = {
  stopEtcdMember: 'stop',
  startEtcdMember: 'start',
  stageEtcdSnapshot: 'stage the snapshot for',
  restoreEtcdMemberData: 'restore the data dir of',
  repointEtcdMemberConfig: 'repoint',
  revertEtcdMemberConfig: 'roll back',
  discardStagedSnapshot: 'discard the staged snapshot of',
  discardRestoredData: 'discard the restored data dir of',
  checkEtcdCluster: 'check etcd',
  addEtcdMember: 'member add',
  restartAgentAndWait: 'restart the agent',
};

/**
 * One line naming what an activity call does and to what: "stop etcd-2 on node-2",
 * "check etcd members etcd-1 of nnoe-prod", "publish artefact etcd.db.gz to s3". Built from the
 * activity's name and its first argument's well-known fields, plus the node of its task queue.
 */
export function activitySummary(activityType: string, args: unknown[], taskQueue?: string): string {
  const i = asInput(args[0]);
  const node = str(i.node) ?? nodeOfTaskQueue(taskQueue);
  const verb = ACTIVITY_VERBS[activityType] ?? words(activityType);
  const target = str(i.member) ?? list(i.members) ?? str(i.component) ?? str(i.fileName);
  const parts = [verb];
  if (target) parts.push(target);
  if (node && node !== target) parts.push(`on ${node}`);
  if (!target && !node && str(i.cluster)) parts.push(`of ${String(i.cluster)}`);
  if (str(i.setId)) parts.push(`(set ${String(i.setId)})`);
  if (list(i.targets)) parts.push(`to ${list(i.targets)}`);
  else if (str(i.target)) parts.push(`on ${String(i.target)}`);
  return fitSummary(parts.join(' '));
}

/** `stopEtcdMember` -> "stop etcd member". */
function words(camel: string): string {
  return camel
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/([A-Z])([A-Z][a-z])/g, '$1 $2')
    .toLowerCase();
}

export interface StepRow {
  name: string;
  state: string;
  startedAt?: string;
  finishedAt?: string;
  detail?: string;
}

const STATE_MARKS: Record<string, string> = { pending: '·', running: '▶', done: '✔', failed: '✘', skipped: '–' };

/** The progress query's steps as a Markdown table, for the UI's current details. */
export function stepTable(runbook: string, state: string, steps: StepRow[], setId?: string): string {
  const head = `**${runbook}**: ${state}${setId ? `, set \`${setId}\`` : ''}`;
  const rows = steps.map((s): [string, string, string] => [`${STATE_MARKS[s.state] ?? ''} ${s.name}`, s.state, s.detail ?? '']);
  return `${head}\n\n${markdownTable(['step', 'state', 'detail'], rows)}`;
}

/**
 * While a run waits for its approval: what it would do and the exact commands that approve it
 * (our CLI, or the Temporal CLI's Update for those without it).
 */
export function approvalDetails(workflowId: string, setId: string | undefined, planLines: string[]): string {
  const payload = JSON.stringify({ ...(setId ? { setId } : {}), approvedBy: '<your name>' });
  return [
    '### Waiting for approval',
    '',
    ...planLines.map((l) => `- ${l}`),
    '',
    'Approve with:',
    '',
    '```',
    `nnoe-dr restore approve ${workflowId}${setId ? ` --set ${setId}` : ''} --by "<your name>"`,
    `temporal workflow update execute --workflow-id ${workflowId} --name approve --input '${payload}'`,
    '```',
  ].join('\n');
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

function markdownTable(header: string[], rows: string[][]): string {
  return [
    `| ${header.join(' | ')} |`,
    `| ${header.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
  ].join('\n');
}
