/**
 * The JSON Schemas in schemas/ are what the code says (issue 14 item 7): regenerated from
 * src/contracts/workflow-contracts.ts and compared file by file. After changing a workflow's input or
 * result, run `npm run schemas` and commit schemas/.
 */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateWorkflowSchemas, SCHEMAS_DIR } from '../../src/scripts/generate-schemas';

describe('workflow JSON Schemas', () => {
  const generated = generateWorkflowSchemas();

  it('covers every workflow the worker runs, input and result', async () => {
    const workflows = Object.keys(await import('../../src/workflows/index'));
    expect([...generated.keys()].sort()).toEqual(workflows.flatMap((w) => [`${w}.input.schema.json`, `${w}.result.schema.json`]).sort());
  });

  it("schemas/ holds exactly what the code generates (run `npm run schemas` after changing a workflow's input or result)", () => {
    const committed = readdirSync(SCHEMAS_DIR)
      .filter((f) => f.endsWith('.schema.json'))
      .sort();
    expect(committed).toEqual([...generated.keys()].sort());
    for (const [name, text] of generated) expect(readFileSync(join(SCHEMAS_DIR, name), 'utf8'), name).toBe(text);
  });

  it('every type was understood by the generator (no untyped holes)', () => {
    for (const [name, text] of generated) expect(text, name).not.toMatch(/Failed to correctly infer type|"not": \{\}/);
  });

  it('an input schema says what the workflow needs: the etcd restore needs a cluster, knows its strategies, refuses unknown fields', () => {
    const schema = JSON.parse(generated.get('etcdRestoreWorkflow.input.schema.json')!) as {
      definitions: Record<string, { required?: string[]; additionalProperties?: boolean; enum?: string[] }>;
    };
    expect(schema.definitions.EtcdRestoreInput).toMatchObject({ required: ['cluster'], additionalProperties: false });
    expect(schema.definitions.RestoreStrategy?.enum).toEqual(['all-members', 'first-node-then-add']);
  });
});
