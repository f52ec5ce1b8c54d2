/**
 * Bech32 (BIP 173) decoding, only what is needed to check age keys without running `age`:
 * recipients are `age1…` and identities `AGE-SECRET-KEY-1…`, both bech32 over 32 key bytes.
 * age does not apply BIP 173's 90-character limit, and neither do we.
 */
const CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
const GENERATORS = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];

function polymod(values: number[]): number {
  let chk = 1;
  for (const value of values) {
    const top = chk >>> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ value;
    GENERATORS.forEach((g, i) => {
      if ((top >>> i) & 1) chk ^= g;
    });
  }
  return chk >>> 0;
}

function expandHrp(hrp: string): number[] {
  const codes = [...hrp].map((c) => c.charCodeAt(0));
  return [...codes.map((c) => c >> 5), 0, ...codes.map((c) => c & 31)];
}

/** 5-bit groups to bytes; undefined when the padding is not zero bits shorter than a group. */
function fiveToEight(words: number[]): Uint8Array | undefined {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const word of words) {
    acc = (acc << 5) | word;
    bits += 5;
    while (bits >= 8) {
      bits -= 8;
      out.push((acc >> bits) & 0xff);
    }
  }
  if (bits >= 5 || ((acc << (8 - bits)) & 0xff) !== 0) return undefined;
  return Uint8Array.from(out);
}

export type Bech32Decoded = { ok: true; hrp: string; data: Uint8Array } | { ok: false; problem: string };

/**
 * Decodes a bech32 string. Problems are described without echoing the input: the same code checks
 * secret identities.
 */
export function decodeBech32(text: string): Bech32Decoded {
  if (text !== text.toLowerCase() && text !== text.toUpperCase()) return { ok: false, problem: 'mixes upper and lower case' };
  const lower = text.toLowerCase();
  const separator = lower.lastIndexOf('1');
  if (separator < 1 || separator + 7 > lower.length) return { ok: false, problem: 'has no "1" separator followed by data and a checksum' };
  const hrp = lower.slice(0, separator);
  if ([...hrp].some((c) => c.charCodeAt(0) < 33 || c.charCodeAt(0) > 126))
    return { ok: false, problem: 'has invalid characters in its prefix' };
  const words: number[] = [];
  for (const c of lower.slice(separator + 1)) {
    const word = CHARSET.indexOf(c);
    if (word === -1) return { ok: false, problem: 'has a character that is not in the bech32 alphabet' };
    words.push(word);
  }
  if (polymod([...expandHrp(hrp), ...words]) !== 1) return { ok: false, problem: 'has a wrong checksum (a typo or a truncated copy)' };
  const data = fiveToEight(words.slice(0, -6));
  if (!data) return { ok: false, problem: 'has invalid padding' };
  return { ok: true, hrp, data };
}
