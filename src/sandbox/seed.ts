/**
 * Sample NNOE data for the sandbox, in the shapes NNOE's agents read (DNS zones, DHCP scopes,
 * policies), so the first backup has something real to carry. Written only into an empty `/nnoe/`.
 */
import type { ClusterConfig } from '../config/schema';
import { connectMember } from '../etcd/connect';

export async function seedSampleData(cluster: ClusterConfig): Promise<number> {
  const client = await connectMember(cluster, cluster.etcd.members[0]!);
  try {
    if ((await client.getAll().prefix('/nnoe/').count()) > 0) return 0;
    const entries: Array<[string, unknown]> = [
      [
        '/nnoe/dns/zones/example.com',
        {
          domain: 'example.com',
          ttl: 3600,
          records: [
            { name: 'www', type: 'A', value: '192.0.2.10' },
            { name: 'mail', type: 'MX', value: '10 mx.example.com.' },
          ],
        },
      ],
      ['/nnoe/dns/zones/lab.internal', { domain: 'lab.internal', ttl: 300, records: [{ name: 'gw', type: 'A', value: '10.10.0.1' }] }],
      [
        '/nnoe/dhcp/scopes/lab-v4',
        {
          subnet: '10.10.0.0/24',
          pool: { start: '10.10.0.100', end: '10.10.0.200' },
          gateway: '10.10.0.1',
          options: { 'domain-name-servers': ['10.10.0.2'] },
        },
      ],
      ['/nnoe/policies/block-malware', { action: 'deny', lists: ['threats'] }],
      ['/nnoe/threats/domains/malware.example', { source: 'sandbox', addedAt: new Date().toISOString() }],
      ['/nnoe/role-mappings/10.10.0.0/24', { role: 'lab' }],
    ];
    for (const [key, value] of entries) await client.put(key).value(JSON.stringify(value));
    return entries.length;
  } finally {
    client.close();
  }
}
