/**
 * Key inventory: per backup set, which age recipients its artefacts were encrypted to (the manifest
 * records them) against what the config has now. A set is at risk when an artefact is encrypted
 * only to recipients no longer configured (rekey it while someone still holds such an identity),
 * or when no identity held here opens it. `backups keys` prints it; `status` and metrics can call
 * keyInventory (catalog + config) or assessKeys (pure) the same way.
 */
import type { Config } from '../config/schema';
import { identityToRecipients, readDecryptionIdentity } from '../crypto';
import { listBackupSets, type CatalogEntry } from './catalog';

export interface SetKeys {
  setId: string;
  cluster: string;
  createdAt: string;
  /** Encrypted artefacts / all artefacts. */
  encrypted: number;
  artefacts: number;
  /** Every recipient some artefact of the set was encrypted to. */
  recipients: string[];
  /** Recipients of the set that the config no longer lists. */
  retiredRecipients: string[];
  /** Whether the identities held here open every encrypted artefact (null: no identity configured here to tell). */
  openable: boolean | null;
  /** What puts the set at risk, each naming the artefact and the keys; empty when fine. */
  problems: string[];
}

export interface KeyInventory {
  configuredRecipients: string[];
  /** Recipients of the identities in `encryption.identity` (null: no identity configured here). */
  heldRecipients: string[] | null;
  sets: SetKeys[];
  ok: boolean;
}

/** The recipients as people compare them: age1 + the first and last characters. */
export function shortRecipient(recipient: string): string {
  return recipient.length > 20 ? `${recipient.slice(0, 12)}...${recipient.slice(-6)}` : recipient;
}

/** Pure: the inventory of `sets` against the configured recipients and the held identities' recipients. */
export function assessKeys(
  sets: Array<Pick<CatalogEntry, 'setId' | 'cluster' | 'createdAt' | 'manifest'>>,
  configured: string[],
  held: string[] | null,
): KeyInventory {
  const assessed = sets.map((set): SetKeys => {
    const artefacts = set.manifest.components.flatMap((c) => c.artefacts);
    const encrypted = artefacts.filter((a) => a.encryption !== null);
    const recipients = [...new Set(encrypted.flatMap((a) => a.encryption!.recipients))];
    const problems: string[] = [];
    let openable: boolean | null = held === null ? null : true;
    for (const artefact of encrypted) {
      const to = artefact.encryption!.recipients;
      const list = to.map(shortRecipient).join(', ');
      if (!to.some((r) => configured.includes(r))) {
        problems.push(
          `${artefact.file} is encrypted only to recipients no longer configured (${list}): rekey it (nnoe-dr backups rekey) while an identity for them is held`,
        );
      }
      if (held !== null && !to.some((r) => held.includes(r))) {
        openable = false;
        problems.push(`no identity held here opens ${artefact.file} (encrypted to ${list})`);
      }
    }
    return {
      setId: set.setId,
      cluster: set.cluster,
      createdAt: set.createdAt,
      encrypted: encrypted.length,
      artefacts: artefacts.length,
      recipients,
      retiredRecipients: recipients.filter((r) => !configured.includes(r)),
      openable,
      problems,
    };
  });
  return { configuredRecipients: configured, heldRecipients: held, sets: assessed, ok: assessed.every((s) => s.problems.length === 0) };
}

/** The inventory of the retained sets in the chosen targets (every target by default) against the config. */
export async function keyInventory(config: Config, options: { cluster?: string; targets?: string[] } = {}): Promise<KeyInventory> {
  const sets = await listBackupSets(config, options);
  return assessKeys(sets, config.encryption?.recipients ?? [], await heldRecipients(config));
}

/** The recipients of the age identities this host holds (null: no identity configured here). */
export async function heldRecipients(config: Config): Promise<string[] | null> {
  return config.encryption?.identity ? identityToRecipients(await readDecryptionIdentity(config.encryption.identity)) : null;
}
