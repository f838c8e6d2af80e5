import FuzzSupport

let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    var bytes = input.starts(with: signature) ? input : synthesize(input)
    fixChunkCRCs(&bytes)
    fuzzDecode(bytes)
    return 0
}

/// Mutated image data in a real PNG rarely survives zlib's adler32, so inputs without the signature are built into
/// a PNG whose checksums all hold: 13 bytes of IHDR, a flags byte (bit 0: a 256-entry PLTE; bits 2...7: that many
/// tRNS bytes follow), then the raw filtered scanlines, stored uncompressed.
func synthesize(_ input: [UInt8]) -> [UInt8] {
    guard input.count >= 14 else { return signature + input }
    let flags = Int(input[13]), transparencyEnd = min(input.count, 14 + flags >> 2)
    var png = signature + chunk("IHDR", input[0..<13])
    if flags & 1 != 0 { png += chunk("PLTE", (0..<768).map { UInt8(truncatingIfNeeded: $0 * 7) }[...]) }
    if flags >> 2 > 0 { png += chunk("tRNS", input[14..<transparencyEnd]) }
    return png + chunk("IDAT", zlibStored(input[transparencyEnd...])[...]) + chunk("IEND", [][...])
}

func chunk(_ type: String, _ data: ArraySlice<UInt8>) -> [UInt8] {
    let length = UInt32(data.count)
    return (0..<4).map { UInt8(truncatingIfNeeded: length >> (24 - 8 * $0)) } + Array(type.utf8) + data
        + [0, 0, 0, 0]  // CRC, filled in by fixChunkCRCs
}

func zlibStored(_ raw: ArraySlice<UInt8>) -> [UInt8] {
    var out: [UInt8] = [0x78, 0x01]
    var blocks = stride(from: raw.startIndex, to: raw.endIndex, by: 65535).map { $0..<min($0 + 65535, raw.endIndex) }
    if blocks.isEmpty { blocks = [raw.startIndex..<raw.startIndex] }
    for (i, block) in blocks.enumerated() {
        let n = UInt16(block.count)
        out += [i == blocks.count - 1 ? 1 : 0, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8(~n >> 8)]
        out += raw[block]
    }
    var a: UInt32 = 1, b: UInt32 = 0
    for byte in raw { a = (a + UInt32(byte)) % 65521; b = (b + a) % 65521 }
    let adler = b << 16 | a
    return out + (0..<4).map { UInt8(truncatingIfNeeded: adler >> (24 - 8 * $0)) }
}

/// Rewrites every chunk's CRC so mutations get past the checksum into the chunk parsers and inflate.
func fixChunkCRCs(_ bytes: inout [UInt8]) {
    var offset = 8
    while offset + 12 <= bytes.count {
        let length = bytes[offset..<(offset + 4)].reduce(0) { $0 << 8 | Int($1) }
        guard length <= bytes.count - offset - 12 else { return }
        let crc = crc32(bytes[(offset + 4)..<(offset + 8 + length)])
        for i in 0..<4 { bytes[offset + 8 + length + i] = UInt8(truncatingIfNeeded: crc >> (24 - 8 * i)) }
        offset += 12 + length
    }
}

func crc32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
    }
    return ~crc
}
