// Z85 (ZeroMQ RFC 32), the text form of CurveZMQ keys. zeromq.js decodes Z85 options itself but exports no
// encoder, and the ZAP handler receives client keys as 32 raw bytes: this turns them into the text users hold.

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#';

export function z85Encode(bytes: Uint8Array): string {
  if (bytes.length % 4 !== 0) throw new Error(`Z85 encodes whole 4-byte groups; got ${bytes.length} bytes`);
  let text = '';
  for (let i = 0; i < bytes.length; i += 4) {
    let value = ((bytes[i]! << 24) >>> 0) + (bytes[i + 1]! << 16) + (bytes[i + 2]! << 8) + bytes[i + 3]!;
    const chunk: string[] = [];
    for (let j = 0; j < 5; j++) {
      chunk.unshift(ALPHABET[value % 85]!);
      value = Math.floor(value / 85);
    }
    text += chunk.join('');
  }
  return text;
}

/** True for the 40-character Z85 text of a 32-byte CurveZMQ key. */
export function isZ85Key(text: string): boolean {
  return text.length === 40 && [...text].every((c) => ALPHABET.includes(c));
}

/** The 32 bytes of a Z85 key (or any Z85 text of whole 5-character groups). */
export function z85Decode(text: string): Buffer {
  if (text.length % 5 !== 0) throw new Error(`Z85 decodes whole 5-character groups; got ${text.length} characters`);
  const bytes = Buffer.alloc((text.length / 5) * 4);
  for (let i = 0; i < text.length; i += 5) {
    let value = 0;
    for (let j = 0; j < 5; j++) {
      const digit = ALPHABET.indexOf(text[i + j]!);
      if (digit < 0) throw new Error(`not a Z85 character: ${JSON.stringify(text[i + j])}`);
      value = value * 85 + digit;
    }
    bytes.writeUInt32BE(value, (i / 5) * 4);
  }
  return bytes;
}
