// Zip archives built byte by byte, for what zip libraries will not write (or take seconds to): hundreds of
// thousands of entries, end records that understate them.

/** A stored zip of `count` empty entries built by hand (jszip takes seconds for 200,000), with a chosen end record. */
export function manyEntryZip(count: number, end: { declared?: number; zip64?: boolean } = {}): Buffer {
  const local = Buffer.alloc(30 + 8);
  local.writeUInt32LE(0x04034b50, 0);
  const central: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const header = Buffer.alloc(46 + 8);
    header.writeUInt32LE(0x02014b50, 0);
    header.writeUInt16LE(8, 28); // name length
    header.write(`f${String(i).padStart(7, '0')}`, 46, 'latin1');
    central.push(header); // every entry points at the one local header: enough for the count, never inflated
  }
  const directory = Buffer.concat(central);
  const declared = end.declared ?? count;
  const zip64 = end.zip64 ?? declared > 0xffff; // as zip tools do: the 16-bit count cannot hold it
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(zip64 ? 0xffff : declared, 8);
  eocd.writeUInt16LE(zip64 ? 0xffff : declared, 10);
  eocd.writeUInt32LE(directory.length, 12);
  eocd.writeUInt32LE(local.length, 16);
  return Buffer.concat([local, directory, ...(zip64 ? zip64End(declared, directory.length, local.length) : []), eocd]);
}

/** The zip64 end record and its locator, placed right after a central directory at `offset`. */
function zip64End(declared: number, size: number, offset: number): Buffer[] {
  const record = Buffer.alloc(56);
  record.writeUInt32LE(0x06064b50, 0);
  record.writeBigUInt64LE(44n, 4);
  record.writeBigUInt64LE(BigInt(declared), 24);
  record.writeBigUInt64LE(BigInt(declared), 32);
  record.writeBigUInt64LE(BigInt(size), 40);
  record.writeBigUInt64LE(BigInt(offset), 48);
  const locator = Buffer.alloc(20);
  locator.writeUInt32LE(0x07064b50, 0);
  locator.writeBigUInt64LE(BigInt(offset + size), 8);
  locator.writeUInt32LE(1, 16);
  return [record, locator];
}
