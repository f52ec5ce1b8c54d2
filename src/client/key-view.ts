/** `backups keys` as text: one line per set, then each problem indented under it. */
import { shortRecipient, type KeyInventory } from '../catalog/keys';

export function printKeyInventory(inventory: KeyInventory, out: (line: string) => void): void {
  out(`configured recipients: ${inventory.configuredRecipients.map(shortRecipient).join(', ') || 'none (no encryption)'}`);
  out(
    `identities held here open: ${inventory.heldRecipients === null ? 'not known (no encryption.identity in this config)' : inventory.heldRecipients.map(shortRecipient).join(', ')}`,
  );
  if (inventory.sets.length === 0) {
    out('no backup sets');
    return;
  }
  for (const set of inventory.sets) {
    const state =
      set.problems.length > 0 ? 'AT RISK' : set.encrypted === 0 ? 'clear' : set.openable === null ? 'ok (not opened here)' : 'ok';
    const retired = set.retiredRecipients.length ? `; also to retired ${set.retiredRecipients.map(shortRecipient).join(', ')}` : '';
    out(
      `${set.setId}\t${state}\t${set.encrypted}/${set.artefacts} encrypted to ${set.recipients.map(shortRecipient).join(', ') || '-'}${retired}`,
    );
    for (const problem of set.problems) out(`  ${problem}`);
  }
  const atRisk = inventory.sets.filter((s) => s.problems.length > 0).length;
  out(atRisk ? `${atRisk} of ${inventory.sets.length} sets at risk` : `all ${inventory.sets.length} sets open with the configured keys`);
}
