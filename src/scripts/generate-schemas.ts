/**
 * JSON Schemas of every workflow's input and result, generated from the TypeScript types in
 * src/contracts/workflow-contracts.ts (the one source of truth) into schemas/:
 * `<workflowType>.input.schema.json` and `<workflowType>.result.schema.json`, each self-contained.
 * `npm run schemas` writes them; test/unit/json-schemas.test.ts fails when they differ from the code.
 */
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createGenerator, type Definition } from 'ts-json-schema-generator';

export const SCHEMAS_DIR = join(__dirname, '..', '..', 'schemas');
const CONTRACTS = join(__dirname, '..', 'contracts', 'workflow-contracts.ts');
const ID_BASE = 'https://nnoe-dr.invalid/schemas/';

type Schema = Definition & { definitions?: Record<string, Definition> };

/** File name -> schema text, for every workflow in WorkflowContracts. */
export function generateWorkflowSchemas(): Map<string, string> {
  const generator = createGenerator({
    path: CONTRACTS,
    tsconfig: join(__dirname, '..', '..', 'tsconfig.json'),
    type: 'WorkflowContracts',
    skipTypeCheck: true,
    expose: 'export',
    topRef: false,
    jsDoc: 'extended',
    additionalProperties: false,
    sortProps: true,
  });
  const all = generator.createSchema('WorkflowContracts') as Schema;
  const definitions = all.definitions ?? {};
  const files = new Map<string, string>();
  for (const [workflowType, contract] of Object.entries(all.properties ?? {}).sort(([a], [b]) => a.localeCompare(b))) {
    for (const part of ['input', 'result'] as const) {
      const root = (contract as Schema).properties?.[part] as Definition;
      const schema: Schema = {
        $schema: 'http://json-schema.org/draft-07/schema#',
        $id: `${ID_BASE}${workflowType}.${part}.schema.json`,
        title: `${workflowType} ${part}`,
        description:
          part === 'input'
            ? `The one argument of ${workflowType} (temporal workflow start --type ${workflowType} --input '<JSON>').`
            : `What ${workflowType} returns.`,
        ...root,
      };
      const used = reachableDefinitions(root, definitions);
      if (used.length > 0) schema.definitions = Object.fromEntries(used.map((name) => [name, definitions[name]!]));
      files.set(`${workflowType}.${part}.schema.json`, `${JSON.stringify(schema, null, 2)}\n`);
    }
  }
  return files;
}

/** The definitions a schema refers to, directly or through others, sorted. */
function reachableDefinitions(root: unknown, definitions: Record<string, Definition>): string[] {
  const found = new Set<string>();
  const visit = (node: unknown) => {
    if (Array.isArray(node)) {
      node.forEach(visit);
      return;
    }
    if (node === null || typeof node !== 'object') return;
    for (const [key, value] of Object.entries(node)) {
      if (key === '$ref' && typeof value === 'string' && value.startsWith('#/definitions/')) {
        const name = decodeURIComponent(value.slice('#/definitions/'.length));
        if (!found.has(name)) {
          found.add(name);
          visit(definitions[name]);
        }
      } else visit(value);
    }
  };
  visit(root);
  return [...found].sort();
}

async function main(): Promise<void> {
  const files = generateWorkflowSchemas();
  await mkdir(SCHEMAS_DIR, { recursive: true });
  for (const old of await readdir(SCHEMAS_DIR)) if (old.endsWith('.schema.json') && !files.has(old)) await rm(join(SCHEMAS_DIR, old));
  for (const [name, text] of files) await writeFile(join(SCHEMAS_DIR, name), text);
  console.log(`wrote ${files.size} schemas to ${SCHEMAS_DIR}`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
