/**
 * A phpIPAM-like database for the sandbox, the tests and the benchmarks: the tables phpIPAM's
 * SCHEMA.sql has for sections, VLANs, subnets, IP addresses, devices, users and logs (trimmed to
 * the columns that matter for a backup), all InnoDB, with what a dump must carry besides rows:
 * foreign keys, a trigger, a stored function and an event (bodies with `;` inside).
 *
 * Additions phpIPAM does not have, on purpose:
 *   - subnets.usedCount, kept by the trigger on ipaddresses (a trigger with real work to restore);
 *   - users.avatar MEDIUMBLOB, so `--hex-blob` has binary data to carry.
 *
 * Data is generated deterministically from a seed (same seed, same rows, same CHECKSUM TABLE on the
 * same server version) with multi-row INSERTs in batches, so a million addresses load in about a
 * minute on 2 cores.
 */
import type { Connection } from 'mysql2/promise';

/** Base tables of the fixture, parents before children. */
export const PHPIPAM_TABLES = ['sections', 'vlans', 'devices', 'users', 'subnets', 'ipaddresses', 'logs'] as const;
export const FIXTURE_TRIGGER = 'ipaddresses_after_insert';
export const FIXTURE_FUNCTION = 'subnet_usage_percent';
export const FIXTURE_EVENT = 'purge_old_logs';

/** Session variable that makes the trigger skip its work during generateData (counters are recomputed once at the end). */
const BULK_LOAD_FLAG = '@nnoe_fixture_bulk_load';

const TABLES_SQL = [
  `CREATE TABLE sections (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  name VARCHAR(128) NOT NULL,
  description TEXT NULL,
  masterSection INT UNSIGNED NULL,
  permissions VARCHAR(1024) NULL,
  strictMode TINYINT(1) NOT NULL DEFAULT 1,
  subnetOrdering VARCHAR(16) NULL,
  \`order\` INT NULL,
  showVLAN TINYINT(1) NOT NULL DEFAULT 0,
  editDate TIMESTAMP NULL DEFAULT NULL ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY (id),
  UNIQUE KEY name (name),
  CONSTRAINT sections_master FOREIGN KEY (masterSection) REFERENCES sections (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE vlans (
  vlanId INT UNSIGNED NOT NULL AUTO_INCREMENT,
  domainId INT UNSIGNED NOT NULL DEFAULT 1,
  name VARCHAR(255) NOT NULL,
  number INT UNSIGNED NULL,
  description TEXT NULL,
  customer_id INT UNSIGNED NULL,
  editDate TIMESTAMP NULL DEFAULT NULL ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY (vlanId),
  KEY number (number)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE devices (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  hostname VARCHAR(255) NULL,
  ip_addr VARCHAR(100) NULL,
  type INT UNSIGNED NULL DEFAULT 0,
  description VARCHAR(256) NULL,
  sections VARCHAR(1024) NULL,
  snmp_community VARCHAR(100) NULL,
  snmp_version SET('0','1','2','3') DEFAULT '0',
  location INT UNSIGNED NULL,
  editDate TIMESTAMP NULL DEFAULT NULL ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY (id),
  KEY hostname (hostname)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE users (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  username VARCHAR(255) NOT NULL,
  authMethod INT UNSIGNED NULL DEFAULT 1,
  password CHAR(128) NULL,
  \`groups\` VARCHAR(1024) NULL,
  role TEXT NULL,
  real_name VARCHAR(128) NULL,
  email VARCHAR(254) NULL,
  lang INT UNSIGNED NULL DEFAULT 9,
  mailNotify SET('Yes','No') NULL DEFAULT 'No',
  avatar MEDIUMBLOB NULL,
  lastLogin TIMESTAMP NULL DEFAULT NULL,
  editDate TIMESTAMP NULL DEFAULT NULL ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY (id),
  UNIQUE KEY username (username)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE subnets (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  subnet VARCHAR(255) NULL COMMENT 'network address as a decimal integer, as phpIPAM stores it',
  mask VARCHAR(3) NULL,
  sectionId INT UNSIGNED NOT NULL,
  description TEXT NULL,
  vrfId INT UNSIGNED NULL,
  masterSubnetId INT UNSIGNED NOT NULL DEFAULT 0,
  allowRequests TINYINT(1) NOT NULL DEFAULT 0,
  vlanId INT UNSIGNED NULL,
  showName TINYINT(1) NOT NULL DEFAULT 0,
  device INT UNSIGNED NULL,
  pingSubnet TINYINT(1) NOT NULL DEFAULT 0,
  isFolder TINYINT(1) NOT NULL DEFAULT 0,
  isFull TINYINT(1) NOT NULL DEFAULT 0,
  threshold INT NOT NULL DEFAULT 0,
  usedCount INT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'kept by trigger ${FIXTURE_TRIGGER}',
  lastScan TIMESTAMP NULL DEFAULT NULL,
  editDate TIMESTAMP NULL DEFAULT NULL ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY (id),
  KEY sectionId (sectionId),
  KEY vlanId (vlanId),
  CONSTRAINT subnets_section FOREIGN KEY (sectionId) REFERENCES sections (id) ON DELETE CASCADE,
  CONSTRAINT subnets_vlan FOREIGN KEY (vlanId) REFERENCES vlans (vlanId) ON DELETE SET NULL,
  CONSTRAINT subnets_device FOREIGN KEY (device) REFERENCES devices (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE ipaddresses (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  subnetId INT UNSIGNED NOT NULL,
  ip_addr VARCHAR(100) NOT NULL COMMENT 'decimal integer, as phpIPAM stores it',
  is_gateway TINYINT(1) NOT NULL DEFAULT 0,
  description VARCHAR(64) NULL,
  hostname VARCHAR(255) NULL,
  mac VARCHAR(20) NULL,
  owner VARCHAR(128) NULL,
  state INT NOT NULL DEFAULT 2,
  switch INT UNSIGNED NULL,
  port VARCHAR(32) NULL,
  note TEXT NULL,
  lastSeen DATETIME NULL,
  excludePing TINYINT(1) NOT NULL DEFAULT 0,
  PTRignore TINYINT(1) NOT NULL DEFAULT 0,
  PTR INT UNSIGNED NOT NULL DEFAULT 0,
  editDate TIMESTAMP NULL DEFAULT NULL ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY (id),
  UNIQUE KEY sid_ip_unique (ip_addr, subnetId),
  KEY subnetId (subnetId),
  CONSTRAINT ipaddresses_subnet FOREIGN KEY (subnetId) REFERENCES subnets (id) ON DELETE CASCADE,
  CONSTRAINT ipaddresses_switch FOREIGN KEY (switch) REFERENCES devices (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE logs (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  severity INT NULL,
  date TIMESTAMP NULL DEFAULT NULL,
  username VARCHAR(255) NULL,
  ipaddr VARCHAR(64) NULL,
  command VARCHAR(128) NULL DEFAULT '0',
  details TEXT NULL,
  PRIMARY KEY (id),
  KEY date (date)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
];

/** Statements with `;` inside their bodies: a mariadb-client script needs DELIMITER around these. */
const ROUTINES_SQL = [
  `CREATE TRIGGER ${FIXTURE_TRIGGER} AFTER INSERT ON ipaddresses FOR EACH ROW
BEGIN
  -- phpIPAM-style usage counter. Bulk loads set ${BULK_LOAD_FLAG} and recompute it once instead.
  IF ${BULK_LOAD_FLAG} IS NULL THEN
    UPDATE subnets SET usedCount = usedCount + 1, editDate = NOW() WHERE id = NEW.subnetId;
  END IF;
END`,
  `CREATE FUNCTION ${FIXTURE_FUNCTION}(p_subnet INT UNSIGNED) RETURNS DECIMAL(6,2)
READS SQL DATA
BEGIN
  DECLARE v_used INT UNSIGNED DEFAULT 0;
  DECLARE v_mask INT DEFAULT NULL;
  DECLARE v_size DOUBLE;
  SELECT usedCount, CAST(mask AS UNSIGNED) INTO v_used, v_mask FROM subnets WHERE id = p_subnet;
  IF v_mask IS NULL THEN
    RETURN NULL;
  END IF;
  -- IPv4 sizes only; an IPv6 /64 is never "used" in percent terms.
  SET v_size = IF(v_mask > 32, POW(2, 64), POW(2, 32 - v_mask) - 2);
  IF v_size <= 0 THEN
    RETURN 100;
  END IF;
  RETURN LEAST(100, ROUND(100 * v_used / v_size, 2));
END`,
  `CREATE EVENT ${FIXTURE_EVENT} ON SCHEDULE EVERY 1 DAY STARTS '2026-01-01 03:00:00' DISABLE
DO BEGIN
  DELETE FROM logs WHERE date < NOW() - INTERVAL 90 DAY;
END`,
];

/** Creates the fixture's tables, trigger, function and event in the connection's current database. */
export async function createPhpipamSchema(conn: Connection): Promise<void> {
  // One statement per query: the server sees each body whole, so no DELIMITER is needed (that is a
  // mariadb-client construct; see phpipamSchemaScript for the same as a client script).
  for (const statement of [...TABLES_SQL, ...ROUTINES_SQL]) await conn.query(statement);
}

/** The schema as a script for `mariadb <db> < script.sql`, with DELIMITER around the bodies. */
export function phpipamSchemaScript(): string {
  return [...TABLES_SQL.map((s) => `${s};\n`), 'DELIMITER $$', ...ROUTINES_SQL.map((s) => `${s}$$\n`), 'DELIMITER ;', ''].join('\n');
}

// ------------------------------------------------------------------ data

export interface GenerateOptions {
  /** Number of IP addresses; the other tables scale with it (200 addresses per subnet). */
  ipaddresses: number;
  /** Same seed, same rows. Default 1. */
  seed?: number;
  /** Rows per INSERT statement. Default 2000 (about 0.5 MiB per statement). */
  batchRows?: number;
  /** Called after each ipaddresses batch with the number loaded so far. */
  onProgress?: (loaded: number) => void;
}

export type FixtureCounts = Record<(typeof PHPIPAM_TABLES)[number], number>;

const ADDRESSES_PER_SUBNET = 200;
const IPV6_EVERY = 16; // every 16th subnet is an IPv6 /64
const EPOCH = Date.UTC(2026, 0, 1);

/** Small deterministic PRNG (mulberry32): reproducible data (and chaos points) without a dependency. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Random = ReturnType<typeof prng>;
const pick = <T>(random: Random, items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const int = (random: Random, max: number) => Math.floor(random() * max);
/** `2026-03-04 05:06:07`: explicit text in UTC (the session runs at +00:00), never a Date. */
const stamp = (random: Random, spanDays = 365) =>
  new Date(EPOCH + int(random, spanDays * 86_400) * 1000).toISOString().slice(0, 19).replace('T', ' ');
const hex = (random: Random, bytes: number) => Array.from({ length: bytes }, () => int(random, 256).toString(16).padStart(2, '0')).join('');

/** Text that a dump must escape correctly: quotes, backslashes, non-ASCII, tabs and newlines. */
const AWKWARD_TEXT = [
  "O'Brien's desk",
  'path C:\\phpipam\\new',
  'Zürich – Büro ✓',
  '東京 ラック 3',
  'tab\there',
  'line one\nline two',
  'emoji 🛰️ uplink',
  '"quoted"',
] as const;

/** Loads generated rows into the fixture's tables (created by createPhpipamSchema); returns the row counts. */
export async function generateData(conn: Connection, options: GenerateOptions): Promise<FixtureCounts> {
  const random = prng(options.seed ?? 1);
  const batch = options.batchRows ?? 2000;
  const subnetCount = Math.max(1, Math.ceil(options.ipaddresses / ADDRESSES_PER_SUBNET));
  const deviceCount = Math.max(8, Math.ceil(options.ipaddresses / 2000));
  const counts: FixtureCounts = {
    sections: 5,
    vlans: 64,
    devices: deviceCount,
    users: 12,
    subnets: subnetCount,
    ipaddresses: options.ipaddresses,
    logs: Math.max(10, Math.ceil(options.ipaddresses / 100)),
  };

  await conn.query("SET SESSION time_zone = '+00:00'");
  await conn.query(`SET ${BULK_LOAD_FLAG} = 1`);
  try {
    await insertSections(conn);
    await insertRows(conn, 'vlans', ['name', 'number', 'description', 'customer_id', 'editDate'], counts.vlans, batch, (i) => [
      `vlan-${100 + i}`,
      100 + i,
      i % 5 === 0 ? pick(random, AWKWARD_TEXT) : `VLAN ${100 + i}`,
      i % 3 === 0 ? null : 1 + int(random, 20),
      stamp(random),
    ]);
    await insertRows(
      conn,
      'devices',
      ['hostname', 'ip_addr', 'type', 'description', 'sections', 'snmp_community', 'snmp_version', 'editDate'],
      counts.devices,
      batch,
      (i) => [
        `sw-${String(i + 1).padStart(4, '0')}.dc${1 + (i % 3)}.example.net`,
        String(ipv4(10, 255, (i >> 8) & 255, (i & 255) + 1)),
        1 + int(random, 9),
        pick(random, AWKWARD_TEXT),
        '1;2;3',
        `c-${hex(random, 4)}`,
        pick(random, ['0', '2', '3']),
        stamp(random),
      ],
    );
    await insertRows(
      conn,
      'users',
      ['username', 'authMethod', 'password', 'groups', 'role', 'real_name', 'email', 'mailNotify', 'avatar', 'lastLogin', 'editDate'],
      counts.users,
      batch,
      (i) => [
        i === 0 ? 'Admin' : `user${i}`,
        1,
        `$6$rounds=3000$${hex(random, 8)}$${hex(random, 43)}`,
        '{"2":"2","3":"3"}',
        i === 0 ? 'Administrator' : 'User',
        i % 4 === 1 ? pick(random, AWKWARD_TEXT) : `User ${i}`,
        `user${i}@example.net`,
        i % 2 ? 'Yes' : 'No',
        i % 3 === 2 ? null : Buffer.from(hex(random, 16 + int(random, 240)), 'hex'),
        stamp(random, 30),
        stamp(random),
      ],
    );
    await insertRows(
      conn,
      'subnets',
      ['subnet', 'mask', 'sectionId', 'description', 'vlanId', 'device', 'pingSubnet', 'threshold', 'lastScan', 'editDate'],
      counts.subnets,
      batch,
      (i) => [
        subnetAddress(i),
        isIpv6Subnet(i) ? '64' : '24',
        isIpv6Subnet(i) ? 4 : 1 + (i % 3),
        i % 7 === 0 ? pick(random, AWKWARD_TEXT) : `subnet ${i + 1}`,
        i % 4 === 0 ? null : 1 + (i % counts.vlans),
        i % 5 === 0 ? null : 1 + (i % counts.devices),
        i % 2,
        80,
        i % 3 ? stamp(random, 30) : null,
        stamp(random),
      ],
    );
    await insertRows(
      conn,
      'ipaddresses',
      [
        'subnetId',
        'ip_addr',
        'is_gateway',
        'description',
        'hostname',
        'mac',
        'owner',
        'state',
        'switch',
        'port',
        'note',
        'lastSeen',
        'excludePing',
        'PTR',
        'editDate',
      ],
      counts.ipaddresses,
      batch,
      (i) => addressRow(random, i, counts),
      options.onProgress,
    );
    await insertRows(conn, 'logs', ['severity', 'date', 'username', 'ipaddr', 'command', 'details'], counts.logs, batch, (i) => [
      int(random, 3),
      stamp(random, 200),
      i % 10 ? `user${1 + (i % 11)}` : 'Admin',
      String(ipv4(192, 0, 2, 1 + (i % 250))),
      pick(random, ['Subnet edit', 'Address add', 'User login', 'Section edit']),
      i % 6 === 0 ? pick(random, AWKWARD_TEXT) : `change #${i}`,
    ]);
  } finally {
    await conn.query(`SET ${BULK_LOAD_FLAG} = NULL`);
  }
  // What the trigger would have done row by row, in one statement.
  await conn.query(
    'UPDATE subnets s JOIN (SELECT subnetId, COUNT(*) AS n FROM ipaddresses GROUP BY subnetId) a ON a.subnetId = s.id SET s.usedCount = a.n, s.editDate = s.editDate',
  );
  return counts;
}

/** createPhpipamSchema + generateData. */
export async function loadPhpipamFixture(conn: Connection, options: GenerateOptions): Promise<FixtureCounts> {
  await createPhpipamSchema(conn);
  return generateData(conn, options);
}

async function insertSections(conn: Connection): Promise<void> {
  const rows = [
    [1, 'Customers', 'Customer networks', null, 1, 'default', 1, 1, '2026-01-02 10:00:00'],
    [2, 'Infrastructure', 'Core, DC and management', null, 1, 'subnet,asc', 2, 1, '2026-01-02 10:00:00'],
    [3, 'Management', 'OOB and IPMI', null, 0, null, 3, 0, '2026-01-02 10:00:00'],
    [4, 'IPv6 Lab', 'IPv6 allocations', null, 1, null, 4, 0, '2026-01-02 10:00:00'],
    [5, 'Customers / EU', 'Zürich – Büro ✓', 1, 1, null, 5, 0, '2026-01-02 10:00:00'],
  ];
  await conn.query(
    'INSERT INTO sections (id, name, description, masterSection, strictMode, subnetOrdering, `order`, showVLAN, editDate) VALUES ?',
    [rows],
  );
}

/** INSERTs `count` rows built by `row(i)` in batches of `batch` rows, one multi-row INSERT each. */
async function insertRows(
  conn: Connection,
  table: string,
  columns: string[],
  count: number,
  batch: number,
  row: (i: number) => unknown[],
  onProgress?: (loaded: number) => void,
): Promise<void> {
  const sql = `INSERT INTO ${table} (${columns.map((c) => `\`${c}\``).join(', ')}) VALUES ?`;
  for (let start = 0; start < count; start += batch) {
    const rows = Array.from({ length: Math.min(batch, count - start) }, (_v, j) => row(start + j));
    await conn.query(sql, [rows]);
    onProgress?.(start + rows.length);
  }
}

function addressRow(random: Random, i: number, counts: FixtureCounts): unknown[] {
  const subnet = Math.floor(i / ADDRESSES_PER_SUBNET);
  const host = (i % ADDRESSES_PER_SUBNET) + 1;
  const address = isIpv6Subnet(subnet)
    ? (BigInt(subnetAddress(subnet)) + BigInt(host)).toString()
    : String(Number(subnetAddress(subnet)) + host);
  const mac = Array.from({ length: 6 }, () => int(random, 256).toString(16).padStart(2, '0')).join(':');
  return [
    subnet + 1,
    address,
    host === 1 ? 1 : 0,
    i % 11 === 0 ? pick(random, AWKWARD_TEXT) : i % 3 === 0 ? null : `server ${i}`,
    `host-${i + 1}.example.net`,
    i % 4 === 0 ? null : mac,
    i % 9 === 0 ? 'NOC' : null,
    1 + int(random, 4),
    i % 5 === 0 ? null : 1 + (i % counts.devices),
    i % 5 === 0 ? null : `Gi1/0/${1 + (i % 48)}`,
    i % 97 === 0 ? `${pick(random, AWKWARD_TEXT)}\n${hex(random, 20)}` : null,
    i % 6 === 0 ? null : stamp(random, 60),
    i % 13 === 0 ? 1 : 0,
    0,
    stamp(random),
  ];
}

function isIpv6Subnet(index: number): boolean {
  return index % IPV6_EVERY === IPV6_EVERY - 1;
}

/** Network address of the index-th subnet as a decimal string: 10.x.y.0/24, or 2001:db8:<index>::/64. */
function subnetAddress(index: number): string {
  if (isIpv6Subnet(index)) return ((0x20010db8n << 96n) | (BigInt(index) << 64n)).toString();
  return String(ipv4(10, (index >> 8) & 255, index & 255, 0));
}

function ipv4(a: number, b: number, c: number, d: number): number {
  return ((a << 24) >>> 0) + (b << 16) + (c << 8) + d;
}
