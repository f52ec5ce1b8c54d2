/**
 * What an NNOE agent should have rendered (derived from etcd exactly as the agent derives it) and
 * what it did render (its Knot and Kea files), compared. Pure: the node activity reads the files
 * and the keys, this module decides.
 *
 * The agent's rules (agent/src/services/{knot,kea}.rs): a key under `<prefix>/dns/zones` not ending
 * in `/zonefile` is a zone named by its last path segment, JSON `{ domain, records: [{ name, type,
 * value, ttl? }] }`, rendered as `<zone_dir>/<name>.zone` plus an entry `{ domain, file }` in
 * knot.conf (written as JSON); a key under `<prefix>/dhcp/scopes` is a scope, JSON `{ subnet,
 * pool: { start, end } }`, rendered as a `subnet4` entry of kea-dhcp4.conf. Values the agent cannot
 * parse are not rendered; a deleted key leaves its rendering behind (the agent only drops its cache).
 */

export interface ExpectedRecord {
  name: string;
  type: string;
  value: string;
  ttl: number;
}
export interface ExpectedZone {
  zone: string;
  domain: string;
  records: ExpectedRecord[];
}
export interface ExpectedScope {
  scope: string;
  subnet: string;
  pool: string;
}

export interface ExpectedRendering {
  zones: ExpectedZone[];
  scopes: ExpectedScope[];
  /** Keys under the watched ranges the agent cannot render (bad JSON): reported, not expected. */
  unrenderable: string[];
}

export interface RenderedZone {
  domain: string;
  file: string;
  records: ExpectedRecord[] | null;
}
export interface RenderedState {
  /** null: the file is missing or not the agent's JSON. */
  knotZones: RenderedZone[] | null;
  keaSubnets: Array<{ subnet: string; pools: string[] }> | null;
}

const DEFAULT_RECORD_TTL = 3600; // knot.rs: record.ttl.unwrap_or(3600)

function lastSegment(key: string): string {
  return key.split('/').pop() ?? '';
}

function isString(v: unknown): v is string {
  return typeof v === 'string';
}

/** Zone JSON as the agent's serde model accepts it, or null. */
function parseZone(zone: string, value: string): ExpectedZone | null {
  let doc: unknown;
  try {
    doc = JSON.parse(value);
  } catch {
    return null;
  }
  const z = doc as { domain?: unknown; records?: unknown };
  if (!z || !isString(z.domain) || !Array.isArray(z.records)) return null;
  const records: ExpectedRecord[] = [];
  for (const r of z.records as Array<Record<string, unknown>>) {
    if (!r || !isString(r.name) || !isString(r.type) || !isString(r.value)) return null;
    if (r.ttl !== undefined && r.ttl !== null && !(Number.isInteger(r.ttl) && (r.ttl as number) >= 0)) return null;
    records.push({ name: r.name, type: r.type, value: r.value, ttl: (r.ttl as number | undefined) ?? DEFAULT_RECORD_TTL });
  }
  return { zone, domain: z.domain, records };
}

function parseScope(scope: string, value: string): ExpectedScope | null {
  let doc: unknown;
  try {
    doc = JSON.parse(value);
  } catch {
    return null;
  }
  const s = doc as { subnet?: unknown; pool?: { start?: unknown; end?: unknown } };
  if (!s || !isString(s.subnet) || !s.pool || !isString(s.pool.start) || !isString(s.pool.end)) return null;
  return { scope, subnet: s.subnet, pool: `${s.pool.start} - ${s.pool.end}` };
}

/** What the agent renders from these keys (`prefix` is its root prefix, e.g. `/nnoe`). */
export function expectedRendering(kvs: Array<{ key: string; value: string }>, prefix: string): ExpectedRendering {
  const zones = new Map<string, ExpectedZone>();
  const scopes = new Map<string, ExpectedScope>();
  const unrenderable: string[] = [];
  for (const { key, value } of kvs) {
    if (key.startsWith(`${prefix}/dns/zones`) && key.includes('/dns/zones/') && !key.endsWith('/zonefile')) {
      const zone = parseZone(lastSegment(key), value);
      if (zone)
        zones.set(zone.zone, zone); // later keys win, as later events do in the agent
      else unrenderable.push(key);
    } else if (key.startsWith(`${prefix}/dhcp/scopes`) && key.includes('/dhcp/scopes/')) {
      const scope = parseScope(lastSegment(key), value);
      if (scope) scopes.set(scope.scope, scope);
      else unrenderable.push(key);
    }
  }
  return { zones: [...zones.values()], scopes: [...scopes.values()], unrenderable };
}

/** knot.conf as the agent writes it (JSON `{ server, zone: [{ domain, file }] }`), or null. */
export function parseKnotConf(text: string): Array<{ domain: string; file: string }> | null {
  try {
    const doc = JSON.parse(text) as { zone?: Array<{ domain?: unknown; file?: unknown }> };
    if (!Array.isArray(doc.zone)) return null;
    return doc.zone
      .filter((z) => isString(z.domain) && isString(z.file))
      .map((z) => ({ domain: z.domain as string, file: z.file as string }));
  } catch {
    return null;
  }
}

/** The records of a zone file the agent wrote: tab-separated `name ttl type value` lines after the SOA block. */
export function parseZoneFileRecords(text: string): ExpectedRecord[] {
  const records: ExpectedRecord[] = [];
  let inSoa = false;
  for (const line of text.split('\n')) {
    if (line.includes('SOA') && line.includes('(')) {
      inSoa = true;
      continue;
    }
    if (inSoa) {
      if (line.startsWith(')')) inSoa = false;
      continue;
    }
    if (line.startsWith('$') || line.trim() === '') continue;
    const [name, ttl, type, ...rest] = line.split('\t');
    if (name === undefined || ttl === undefined || type === undefined || rest.length === 0) continue;
    records.push({ name, ttl: Number(ttl), type, value: rest.join('\t') });
  }
  return records;
}

/** kea-dhcp4.conf as the agent writes it (`{ Dhcp4: { subnet4: [{ subnet, pools: [{ pool }] }] } }`), or null. */
export function parseKeaConf(text: string): Array<{ subnet: string; pools: string[] }> | null {
  try {
    const doc = JSON.parse(text) as { Dhcp4?: { subnet4?: Array<{ subnet?: unknown; pools?: Array<{ pool?: unknown }> }> } };
    const subnets = doc.Dhcp4?.subnet4;
    if (!Array.isArray(subnets)) return null;
    return subnets
      .filter((s) => isString(s.subnet))
      .map((s) => ({
        subnet: s.subnet as string,
        pools: (s.pools ?? []).map((p) => p.pool).filter(isString),
      }));
  } catch {
    return null;
  }
}

const recordKey = (r: ExpectedRecord) => `${r.name}\t${r.ttl}\t${r.type}\t${r.value}`;

function sameRecords(a: ExpectedRecord[], b: ExpectedRecord[]): boolean {
  const left = a.map(recordKey).sort();
  const right = b.map(recordKey).sort();
  return left.length === right.length && left.every((r, i) => r === right[i]);
}

function listSome(items: string[], max = 5): string {
  return items.length <= max ? items.join(', ') : `${items.slice(0, max).join(', ')} and ${items.length - max} more`;
}

/**
 * Every way the rendering differs from what etcd says, one sentence each (empty: the agent serves
 * exactly etcd's zones and scopes). `zoneDir` tells which zone file each zone must use.
 */
export function renderingDifferences(
  expected: ExpectedRendering,
  rendered: RenderedState,
  layout: { dns: boolean; dhcp: boolean; zoneDir?: string },
): string[] {
  const problems: string[] = [];
  if (layout.dns) {
    if (rendered.knotZones === null) {
      problems.push("knot.conf is missing or not the agent's JSON");
    } else {
      const served = new Map(rendered.knotZones.map((z) => [z.domain, z]));
      const missing = expected.zones.filter((z) => !served.has(z.domain)).map((z) => z.domain);
      const wanted = new Set(expected.zones.map((z) => z.domain));
      const stale = rendered.knotZones.filter((z) => !wanted.has(z.domain)).map((z) => z.domain);
      if (missing.length > 0) problems.push(`zones in etcd not served: ${listSome(missing)}`);
      if (stale.length > 0) problems.push(`zones served that etcd does not have: ${listSome(stale)}`);
      const differing: string[] = [];
      for (const zone of expected.zones) {
        const got = served.get(zone.domain);
        if (!got) continue;
        const file = layout.zoneDir ? `${layout.zoneDir}/${zone.zone}.zone` : got.file;
        if (got.file !== file || got.records === null || !sameRecords(zone.records, got.records)) differing.push(zone.domain);
      }
      if (differing.length > 0) problems.push(`zone records differ from etcd: ${listSome(differing)}`);
    }
  }
  if (layout.dhcp) {
    if (rendered.keaSubnets === null) {
      problems.push("kea-dhcp4.conf is missing or not the agent's JSON");
    } else {
      const served = new Map(rendered.keaSubnets.map((s) => [s.subnet, s]));
      const wanted = new Set(expected.scopes.map((s) => s.subnet));
      const missing = expected.scopes.filter((s) => !served.has(s.subnet)).map((s) => s.subnet);
      const stale = rendered.keaSubnets.filter((s) => !wanted.has(s.subnet)).map((s) => s.subnet);
      const differing = expected.scopes
        .filter((s) => served.has(s.subnet) && !served.get(s.subnet)!.pools.includes(s.pool))
        .map((s) => s.subnet);
      if (missing.length > 0) problems.push(`DHCP scopes in etcd not served: ${listSome(missing)}`);
      if (stale.length > 0) problems.push(`DHCP subnets served that etcd does not have: ${listSome(stale)}`);
      if (differing.length > 0) problems.push(`DHCP pools differ from etcd: ${listSome(differing)}`);
    }
  }
  return problems;
}
