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
