/**
 * The one configuration file of nnoe-dr: clusters, storage targets, Temporal connection.
 *
 * Secrets (private keys, passwords, S3 keys) never appear inline: they are references to a file
 * or an environment variable, resolved only inside activities on the worker (see ./secrets.ts).
 */
import { z } from 'zod';
import { isIP } from 'node:net';
import { validateRecipient } from '../crypto/keys';
import { DURATION_EXPECTED, durationProblem } from '../common/input-checks';

/** `10.0.0.1:53` or `[fd00::1]:53`: what a resolver's setServers takes. */
function isDnsServerAddress(value: string): boolean {
  const match = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/.exec(value);
  if (!match || Number(match[3]) > 65535) return false;
  return match[1] !== undefined ? isIP(match[1]) === 6 : isIP(match[2]!) === 4;
}

/** `{ file: /path }` or `{ env: NAME }`: where a secret lives, never the secret itself. */
export const SecretRefSchema = z.union(
  [
    z.strictObject({ file: z.string().min(1, 'expected an absolute file path') }),
    z.strictObject({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name') }),
  ],
  { error: 'expected a secret reference: { file: /path/to/secret } or { env: VARIABLE_NAME }' },
);
export type SecretRef = z.infer<typeof SecretRefSchema>;

/** Names of clusters, members, nodes and targets: safe in paths and object keys. */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]*$/i;
const name = z.string().regex(NAME_PATTERN, 'expected a name of letters, digits, ".", "_" or "-"');
const url = (what: string) =>
  z.string().regex(/^https?:\/\/[^/\s]+$/, `expected ${what} like https://10.0.0.1:2379 (scheme, host and port, no path)`);

/** The default of `restore.revisionBump`: etcd's recovery guide's figure. */
export const REVISION_BUMP_DEFAULT = 1_000_000_000;

export const EtcdMemberSchema = z.strictObject({
  name,
  /** Node whose worker runs host-local activities for this member (task queue nnoe-dr.node.<node>). */
  node: name,
  clientUrl: url('a client URL'),
  peerUrl: url('a peer URL'),
});

export const EtcdTlsSchema = z.strictObject({
  caFile: z.string().min(1),
  certFile: z.string().min(1),
  keyFile: SecretRefSchema,
});

export const ServiceDriverSchema = z.discriminatedUnion('driver', [
  z.strictObject({ driver: z.literal('supervisor'), supervisorConf: z.string().min(1) }),
  z.strictObject({ driver: z.literal('systemd'), unit: z.string().default('etcd.service') }),
]);

/** How a node's service is stopped and started. */
export const ServiceRefSchema = z.discriminatedUnion(
  'driver',
  [
    z.strictObject({ driver: z.literal('supervisor'), supervisorConf: z.string().min(1), program: z.string().min(1) }),
    z.strictObject({ driver: z.literal('systemd'), unit: z.string().min(1) }),
  ],
  { error: 'expected a service: { driver: systemd, unit } or { driver: supervisor, supervisorConf, program }' },
);

/** A duration in Temporal's format (30s, 5m, 1h, 2d). */
const duration = z.string().refine((v) => durationProblem('duration', v) === null, `expected ${DURATION_EXPECTED}`);

const absolutePath = (what: string) => z.string().startsWith('/', `expected an absolute ${what} path`);

/**
 * An NNOE agent on one node. Its own `agent.toml` says where its sled cache lives, which etcd prefix
 * it watches and where it renders Knot's and Kea's config (src/agent/agent-toml.ts); the paths
 * here override it only for agents whose files moved. The agent serves no HTTP: its health is
 * judged from the process, its etcd connection and what it rendered (src/activities/agent-service.ts).
 */
export const AgentSchema = z.strictObject({
  node: name,
  agentToml: absolutePath('file').default('/etc/nnoe/agent.toml'),
  service: ServiceRefSchema.default({ driver: 'systemd', unit: 'nnoe-agent.service' }),
  cacheDir: absolutePath('directory').optional(),
  prefix: z
    .string()
    .regex(/^\/[^\s]*$/, 'expected an etcd key prefix like /nnoe')
    .optional(),
  dnsConfigPath: absolutePath('file').optional(),
  zoneDir: absolutePath('directory').optional(),
  dhcpConfigPath: absolutePath('file').optional(),
  /** The agent's drop-in config dir; backed up when present on the node. */
  configDir: absolutePath('directory').default('/etc/nnoe/agent.d'),
  /** Host state a real recovery needs, backed up with the agent's config (component `agent-host`). */
  tlsDir: absolutePath('directory').default('/etc/nnoe/certs'),
  dnssecKeyDir: absolutePath('directory').default('/var/lib/knot/keys'),
  keaLeaseFile: absolutePath('file').default('/var/lib/kea/kea-leases4.csv'),
  /** On the Nebula CA host only: the CA's private key, backed up (always encrypted) with this node's host state. */
  nebulaCaKey: absolutePath('file').optional(),
});

/** The Nebula overlay files of one node: ca.crt, host.crt, host.key, config.yml in `dir`. */
export const NebulaNodeSchema = z.strictObject({
  node: name,
  dir: z.string().startsWith('/', 'expected an absolute directory path').default('/etc/nebula'),
  /** How Nebula is stopped and started on the node (used by the Nebula restore). */
  service: ServiceRefSchema.optional(),
});

/**
 * How artefacts are compressed: gzip (default; parallel members, read by any `gunzip`) or zstd
 * (frames, read by `zstd -d`; faster for the same ratio). Restores read both, whatever is configured now.
 */
export const CompressionSchema = z.enum(['gzip', 'zstd'], { error: 'expected a compression format: gzip or zstd' });

const gfsCount = z.number().int('expected a whole number').min(0, 'expected 0 or more');
export const RetentionPolicySchema = z
  .strictObject({
    keepDays: z.number().positive('expected a number of days above 0').optional(),
    gfs: z.strictObject({ daily: gfsCount.optional(), weekly: gfsCount.optional(), monthly: gfsCount.optional() }).optional(),
  })
  .refine((p) => p.keepDays !== undefined || Object.values(p.gfs ?? {}).some((n) => (n ?? 0) > 0), {
    error: 'expected keepDays and/or a gfs daily, weekly or monthly count (this policy would keep nothing)',
  });

/** A runbook profile (production: keep 7 days; development: keep 3 days) or a policy of your own. */
export const RetentionSchema = z
  .strictObject({
    profile: z.enum(['production', 'development'], { error: 'expected a runbook profile: production or development' }).optional(),
    policy: RetentionPolicySchema.optional(),
  })
  .refine((r) => (r.profile === undefined) !== (r.policy === undefined), {
    error: 'expected either profile (production | development) or policy ({ keepDays?, gfs? }), exactly one',
  });

/** The phpIPAM database (MariaDB/MySQL) of a cluster: dumped by the phpIPAM backup runbook. */
export const PhpipamSchema = z.strictObject({
  /** Host name or IP of the MariaDB/MySQL server (TCP; a local socket is not used). */
  host: z.string().min(1, 'expected the database host name or IP'),
  port: z.number().int().min(1).max(65535).default(3306),
  database: z
    .string()
    .regex(/^[A-Za-z0-9_$]+$/, 'expected a database name of letters, digits, "_" or "$"')
    .default('phpipam'),
  user: z.string().min(1, 'expected the database user name'),
  /** Secret reference, resolved on the worker only; never on a command line or in a payload. */
  password: SecretRefSchema,
  /** `auto` asks the server; `mariadb`/`mysql` additionally fail the backup if the server is the other one. */
  flavour: z.enum(['auto', 'mariadb', 'mysql']).default('auto'),
  /** Dump program; default `mariadb-dump` for MariaDB servers, `mysqldump` for MySQL servers (from PATH). */
  dumpBinary: z.string().min(1).optional(),
  /**
   * The phpIPAM application, stopped while a restore swaps its schema and started again afterwards.
   * Driven by the management worker (the restore's queue), so it names a service on that host.
   */
  appService: ServiceRefSchema.optional(),
  /**
   * The user restores and drills connect as, when not the backup's: they create and drop schemas
   * beside the live one and recreate triggers, routines, events and views of other definers.
   * Grants it needs (README "phpIPAM restore credential"): ALL PRIVILEGES ON `<db>`.* and ON
   * `<db>\_%`.*, SET USER (MariaDB; SUPER before 10.5.2) and SELECT ON mysql.proc for objects of other definers.
   */
  restore: z
    .strictObject({
      user: z.string().min(1, 'expected the restore user name'),
      password: SecretRefSchema,
    })
    .optional(),
});

export const ClusterSchema = z.strictObject({
  name,
  etcd: z.strictObject({
    members: z.array(EtcdMemberSchema).min(1, 'expected at least one etcd member'),
    tls: EtcdTlsSchema.optional(),
    auth: z.strictObject({ username: z.string().min(1), password: SecretRefSchema }).optional(),
  }),
  service: ServiceDriverSchema.optional(),
  /** Overrides the top-level retention for this cluster's sets. */
  retention: RetentionSchema.optional(),
  /** Overrides the top-level compression for this cluster's artefacts. */
  compression: CompressionSchema.optional(),
  agents: z.array(AgentSchema).default([]),
  /** What a restored cluster must hold before the restore counts as done. */
  restore: z
    .strictObject({
      /** Keys that must exist after a restore; with `value`, with exactly that value (e.g. /nnoe/dns/zones/example.com). */
      criticalKeys: z.array(z.strictObject({ key: z.string().min(1), value: z.string().optional() })).default([]),
      /**
       * `snapshot restore --bump-revision <this> --mark-compacted` where the tool has it (etcdutl
       * 3.5.10+): the restored cluster's revision jumps this far above the snapshot's and all before
       * is compacted, so a client watching across the restore gets a compaction error instead of
       * silently missing the revisions that went back. More than the writes the cluster could have
       * taken since the snapshot (etcd's recovery guide uses 1,000,000,000). 0 turns it off.
       */
      revisionBump: z
        .number()
        .int('expected a whole number of revisions')
        .min(0, 'expected 0 (off) or more')
        .default(REVISION_BUMP_DEFAULT),
    })
    .prefault({}),
  /** Service checks after a disaster recovery: the stack answers, not just etcd. */
  checks: z
    .strictObject({
      /** Names resolved against a DNS server (e.g. the node's dnsmasq/Knot), answers compared. */
      dns: z
        .array(
          z.strictObject({
            // An address, not a name: the check's resolver is told which server to ask, it cannot look one up.
            server: z
              .string()
              .refine(
                isDnsServerAddress,
                'expected the IP address and port of a DNS server, e.g. 10.0.0.1:53 or [fd00::1]:53 (not a host name)',
              ),
            name: z.string().min(1),
            expect: z.array(z.string().min(1)).min(1, 'expected the IPv4 answers the name must resolve to'),
          }),
        )
        .default([]),
      /** Kea lease files on a node that must hold active leases. */
      dhcp: z
        .array(
          z.strictObject({
            node: name,
            leaseFile: z.string().startsWith('/', 'expected an absolute path to a Kea lease CSV (kea-leases4.csv)'),
            minActive: z.number().int().min(0).default(1),
          }),
        )
        .default([]),
      /** Metrics endpoints that must answer with these series. */
      metrics: z
        .array(
          z.strictObject({
            // The URL is recorded in the recovery's report and history: no credentials in it.
            url: z
              .string()
              .url('expected a metrics URL, e.g. http://10.0.0.1:9090/metrics')
              .refine((u) => {
                const parsed = new URL(u);
                return !parsed.username && !parsed.password;
              }, "a metrics URL must not carry credentials (user:password@): it is recorded in the run's history"),
            series: z.array(z.string().min(1)).min(1, 'expected the metric names that must be present'),
          }),
        )
        .default([]),
    })
    .prefault({}),
  /**
   * What `nnoe-dr status` (and deploy/prometheus/alerts.yml) holds the cluster to. Without them: a
   * backup may be 1.5 x its schedule's period old, the newest verification 2 days when a drill is scheduled.
   */
  objectives: z
    .strictObject({
      /** Oldest a component's newest complete set may be, e.g. 9h (overrides 1.5 x the schedule's period). */
      backupMaxAge: duration.optional(),
      /** Oldest the newest verified set may be, e.g. 2d (also without a drill schedule). */
      verifiedMaxAge: duration.optional(),
      /** How far a running change capture may be behind etcd's revision. */
      captureMaxLagRevisions: z.number().int('expected a whole number of revisions').min(0).default(1000),
    })
    .prefault({}),
  /** Nodes whose Nebula certificates and config are backed up (always encrypted). */
  nebula: z.array(NebulaNodeSchema).default([]),
  phpipam: PhpipamSchema.optional(),
  /**
   * Who may approve this cluster's destructive runs (the `approve` Update's approvedBy; names, as
   * people type them). Absent: any name is accepted and recorded in the run.
   */
  approvers: z
    .array(z.string().trim().min(1, "expected an approver's name"))
    .min(1, 'expected at least one name, or leave approvers out to accept any name')
    .optional(),
});

const LocalTargetSchema = z.strictObject({
  name,
  type: z.literal('local'),
  path: z.string().startsWith('/', 'expected an absolute directory path'),
});

const S3TargetSchema = z.strictObject({
  name,
  type: z.literal('s3'),
  bucket: z.string().min(3, 'expected an S3 bucket name'),
  prefix: z.string().default(''),
  endpoint: url('an S3 endpoint').optional(),
  region: z.string().default('us-east-1'),
  forcePathStyle: z.boolean().default(false),
  accessKeyId: SecretRefSchema.optional(),
  secretAccessKey: SecretRefSchema.optional(),
  /** Multipart part size in MiB: memory per upload is about this, whatever the artefact size. */
  partSizeMiB: z.number().int().min(5).max(512).default(8),
  /** S3 server-side encryption as a second layer under age (which stays the one that matters). */
  serverSideEncryption: z
    .strictObject({
      algorithm: z.enum(['AES256', 'aws:kms'], { error: 'expected AES256 (SSE-S3) or aws:kms (SSE-KMS)' }),
      kmsKeyId: z.string().min(1).optional(),
    })
    .refine((sse) => sse.algorithm === 'aws:kms' || sse.kmsKeyId === undefined, { error: 'kmsKeyId is only used with algorithm aws:kms' })
    .optional(),
  /**
   * S3 Object Lock (the bucket must have been created with it): every object is written with this
   * retention, and prune keeps a set until every object of it may be deleted. GOVERNANCE locks can
   * be lifted by who holds s3:BypassGovernanceRetention; prune does so only with bypassGovernance.
   */
  objectLock: z
    .strictObject({
      mode: z.enum(['GOVERNANCE', 'COMPLIANCE'], { error: 'expected GOVERNANCE or COMPLIANCE (S3 Object Lock retention modes)' }),
      days: z.number().int('expected a whole number of days').min(1, 'expected at least 1 day'),
      bypassGovernance: z.boolean().default(false),
    })
    .optional(),
});

export const StorageTargetSchema = z.discriminatedUnion('type', [LocalTargetSchema, S3TargetSchema]);

const AgeRecipientSchema = z.string().superRefine((value, ctx) => {
  const problem = validateRecipient(value); // never repeats the value: it may be a pasted secret key
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/** Encryption at rest with age: every artefact is encrypted to all recipients; any one identity decrypts. */
export const EncryptionSchema = z.strictObject({
  recipients: z.array(AgeRecipientSchema).min(1, 'expected at least one age recipient (age1...)'),
  /** Decryption identity (AGE-SECRET-KEY-1... lines): read only by verify/restore activities. */
  identity: SecretRefSchema.optional(),
});

/** Restore drills (src/workflows/drill.ts): where a failing drill alerts and where every drill's figures go. */
export const DrillsSchema = z.strictObject({
  /**
   * POSTed a JSON report (no secrets) when a drill fails: a URL, or a secret reference to a file or
   * variable holding one (chat webhook URLs carry their token in the path).
   */
  alertWebhook: z
    .union(
      [
        z
          .string()
          .regex(
            /^https?:\/\/[^\s]+$/,
            'expected a webhook URL (http:// or https://) or a secret reference { file } / { env } holding one',
          ),
        SecretRefSchema,
      ],
      { error: 'expected a webhook URL (http:// or https://) or a secret reference { file } / { env } holding one' },
    )
    .optional(),
  /** How long the webhook may take to answer one POST. */
  alertTimeoutSeconds: z.number().positive().max(300).default(10),
  /** Prometheus textfile-collector file, replaced atomically after every drill (node_exporter reads only *.prom). */
  metricsFile: z
    .string()
    .startsWith('/', 'expected an absolute file path')
    .endsWith('.prom', 'expected a file name ending in .prom (the textfile collector reads only those)')
    .optional(),
});

/** `127.0.0.1:9464` or `[::1]:9464`: where a worker serves /metrics. */
const listenAddress = z
  .string()
  .regex(/^(?:\[[0-9a-fA-F:.]+\]|[^:\s/]+):\d{1,5}$/, 'expected host:port to listen on, e.g. 127.0.0.1:9464 or 0.0.0.0:9464');
const MetricsEndpointSchema = z.strictObject({
  /** Our series (prom-client) on /metrics. */
  listen: listenAddress,
  /** The Temporal SDK's own series (its Runtime's Prometheus exporter, a listener of its own); absent: not exported. */
  temporalListen: listenAddress.optional(),
});

/** Prometheus endpoints of the workers (src/metrics/server.ts); absent: no worker serves metrics. */
export const MetricsSchema = z.strictObject({
  management: MetricsEndpointSchema.optional(),
  /** Every node worker (each on its own host). */
  node: MetricsEndpointSchema.optional(),
  /** Per node, overriding `node` (several node workers on one host need their own ports). */
  nodes: z.record(name, MetricsEndpointSchema).default({}),
  /** How often the management worker re-derives our series from the catalog and Temporal. */
  refreshSeconds: z.number().int().min(1, 'expected whole seconds, at least 1').default(60),
});

export const ConfigSchema = z
  .strictObject({
    temporal: z
      .strictObject({
        address: z.string().default('127.0.0.1:7233'),
        namespace: z.string().default('default'),
        taskQueue: z.string().default('nnoe-dr'),
      })
      .prefault({}),
    /** Staging area of the management worker: snapshots are verified here before they are published. */
    workDir: z.string().startsWith('/', 'expected an absolute directory path'),
    clusters: z.array(ClusterSchema).min(1, 'expected at least one cluster'),
    storage: z.array(StorageTargetSchema).min(1, 'expected at least one storage target'),
    encryption: EncryptionSchema.optional(),
    retention: RetentionSchema.default({ profile: 'production' }),
    /** Compression of every artefact (a cluster's `compression` overrides it). */
    compression: CompressionSchema.default('gzip'),
    prune: z
      .strictObject({
        /** Multipart uploads older than this are debris of a crashed backup: prune aborts them. */
        staleUploadHours: z.number().positive().default(24),
      })
      .prefault({}),
    drills: DrillsSchema.optional(),
    metrics: MetricsSchema.optional(),
    /**
     * Directory holding etcd, etcdctl and (etcd 3.5+) etcdutl, used for snapshot status/restore and
     * scratch members. Default: found on PATH.
     */
    etcdBinDir: z.string().startsWith('/', 'expected an absolute directory path').optional(),
  })
  .superRefine((config, ctx) => {
    for (const [key, list] of [
      ['clusters', config.clusters],
      ['storage', config.storage],
    ] as const) {
      const seen = new Set<string>();
      list.forEach((item, index) => {
        if (seen.has(item.name)) {
          ctx.addIssue({ code: 'custom', path: [key, index, 'name'], message: `duplicate name "${item.name}"` });
        }
        seen.add(item.name);
      });
    }
    // Nebula archives hold host private keys: they are never stored in clear.
    config.clusters.forEach((cluster, index) => {
      if (cluster.nebula.length > 0 && !config.encryption) {
        ctx.addIssue({
          code: 'custom',
          path: ['clusters', index, 'nebula'],
          message: 'Nebula backups hold private keys and are always encrypted: expected encryption.recipients (age1...) in the config',
        });
      }
    });
  });

export type Config = z.infer<typeof ConfigSchema>;
export type ClusterConfig = z.infer<typeof ClusterSchema>;
export type EtcdMemberConfig = z.infer<typeof EtcdMemberSchema>;
export type StorageTargetConfig = z.infer<typeof StorageTargetSchema>;
export type S3TargetConfig = z.infer<typeof S3TargetSchema>;
export type EncryptionConfig = z.infer<typeof EncryptionSchema>;
export type RetentionConfig = z.infer<typeof RetentionSchema>;
export type ServiceRef = z.infer<typeof ServiceRefSchema>;
export type AgentConfig = z.infer<typeof AgentSchema>;
export type NebulaNodeConfig = z.infer<typeof NebulaNodeSchema>;
export type PhpipamConfig = z.infer<typeof PhpipamSchema>;
export type DrillsConfig = z.infer<typeof DrillsSchema>;
