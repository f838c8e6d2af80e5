/// PNG decoder producing what Pillow's PngImagePlugin would hold: 16-bit samples reduced to 8 bits (high byte,
/// except 16-bit gray which Pillow keeps as "I;16" and clips to 255 when converting to RGB), 1/2/4-bit gray
/// scaled to 0...255, and tRNS kept with Pillow's quirks (see `DecodedImage.transparency`).
enum PNGDecoder {
    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    private struct Header {
        var width: Int, height: Int, bitDepth: Int, colorType: Int, interlaced: Bool

        var channels: Int { [0: 1, 2: 3, 3: 1, 4: 2, 6: 4][colorType]! }
        var bitsPerPixel: Int { channels * bitDepth }
        /// The distance filters look back: one whole pixel, at least one byte.
        var filterStride: Int { max(1, bitsPerPixel / 8) }
        func rowBytes(_ pixels: Int) -> Int { (pixels * bitsPerPixel + 7) / 8 }
    }

    /// Adam7 passes as (x0, y0, dx, dy); a single full pass when not interlaced.
    private static let adam7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
                                (0, 1, 1, 2)]

    static func decode(_ bytes: [UInt8], limits: ImageLimits) throws -> DecodedImage {
        guard bytes.starts(with: signature) else { throw DecodeFailure(.unknownFormat, "not a PNG file") }
        var offset = signature.count
        var header: Header?
        var palette: [UInt8]?
        var transparency: [UInt8]?
        var orientation = 1
        var compressed: [UInt8] = []
        var sawIDAT = false
        chunks: while true {
            guard offset + 12 <= bytes.count else {
                // Pillow decodes a file that lacks IEND as long as its image data is complete.
                if sawIDAT && offset == bytes.count { break }
                throw DecodeFailure(.truncated, "PNG file is truncated")
            }
            let length = Int(readBE32(bytes, offset))
            let type = String(decoding: bytes[(offset + 4)..<(offset + 8)], as: UTF8.self)
            guard length < 1 << 31, offset + 12 + length <= bytes.count else {
                throw DecodeFailure(.truncated, "PNG file is truncated in chunk \(type)")
            }
            let data = bytes[(offset + 8)..<(offset + 8 + length)]
            guard crc32(bytes[(offset + 4)..<(offset + 8 + length)]) == readBE32(bytes, offset + 8 + length) else {
                throw DecodeFailure(.checksumMismatch, "PNG chunk \(type) has a bad CRC")
            }
            offset += 12 + length
            if header == nil && type != "IHDR" { throw DecodeFailure(.corrupt, "PNG does not start with IHDR") }
            switch type {
            case "IHDR": header = try parseHeader(data, limits: limits)
            case "PLTE":
                guard length % 3 == 0, length <= 768 else { throw DecodeFailure(.corrupt, "invalid PNG palette") }
                palette = Array(data)
            case "tRNS": transparency = try parseTransparency(data, header!)
            case "eXIf": orientation = EXIF.orientation(tiff: Array(data))
            case "IDAT":
                sawIDAT = true
                compressed.append(contentsOf: data)
            case "IEND": break chunks
            default: continue
            }
        }
        guard let header, sawIDAT else { throw DecodeFailure(.corrupt, "PNG has no image data") }
        let passes = header.interlaced ? adam7 : [(0, 0, 1, 1)]
        var rawSize = 0
        for (x0, y0, dx, dy) in passes {
            let w = (header.width - x0 + dx - 1) / dx, h = (header.height - y0 + dy - 1) / dy
            if w > 0 && h > 0 { rawSize += h * (1 + header.rowBytes(w)) }
        }
        let raw = try Inflate.zlibDecompress(compressed, outputSize: rawSize)
        var samples = [UInt8](repeating: 0, count: header.width * header.height * header.channels)
        var rawOffset = 0
        for (x0, y0, dx, dy) in passes {
            let w = (header.width - x0 + dx - 1) / dx, h = (header.height - y0 + dy - 1) / dy
            guard w > 0 && h > 0 else { continue }
            let rows = try unfilter(raw, at: rawOffset, rowBytes: header.rowBytes(w), rows: h,
                                    stride: header.filterStride)
            rawOffset += h * (1 + header.rowBytes(w))
            scatter(rows, header: header, pass: (x0, y0, dx, dy), size: (w, h), into: &samples)
        }
        let layout: DecodedImage.Layout
        switch header.colorType {
        case 0: layout = .gray
        case 2: layout = .rgb
        case 3:
            guard let palette else { throw DecodeFailure(.corrupt, "indexed PNG has no palette") }
            layout = .indexed(palette: palette)
        case 4: layout = .grayAlpha
        default: layout = .rgba
        }
        return DecodedImage(width: header.width, height: header.height, layout: layout, samples: samples,
                            transparency: transparency, orientation: orientation)
    }

    private static func parseHeader(_ data: ArraySlice<UInt8>, limits: ImageLimits) throws -> Header {
        guard data.count == 13 else { throw DecodeFailure(.corrupt, "invalid PNG header") }
        let base = data.startIndex
        let width = Int(readBE32(data, base)), height = Int(readBE32(data, base + 4))
        let bitDepth = Int(data[base + 8]), colorType = Int(data[base + 9])
        let allowed: [Int: Set<Int>] = [0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16]]
        guard let depths = allowed[colorType], depths.contains(bitDepth) else {
            throw DecodeFailure(.corrupt, "invalid PNG color type \(colorType) with bit depth \(bitDepth)")
        }
        guard data[base + 10] == 0, data[base + 11] == 0, data[base + 12] <= 1 else {
            throw DecodeFailure(.unsupported, "unknown PNG compression, filter or interlace method")
        }
        try limits.check(width: width, height: height)
        return Header(width: width, height: height, bitDepth: bitDepth, colorType: colorType,
                      interlaced: data[base + 12] == 1)
    }

    /// Pillow compares a gray/RGB key against its 8-bit samples using the key's low byte (and for 1-bit images
    /// maps any nonzero key to 255), without scaling 2/4-bit keys; reproduced as is.
    private static func parseTransparency(_ data: ArraySlice<UInt8>, _ header: Header) throws -> [UInt8]? {
        let values = stride(from: data.startIndex, to: data.endIndex - 1, by: 2).map { data[$0 + 1] }
        switch header.colorType {
        case 3: return Array(data)
        case 0:
            guard values.count >= 1 else { throw DecodeFailure(.corrupt, "truncated tRNS chunk") }
            if header.bitDepth == 1 { return [readBE16(data, data.startIndex) != 0 ? 255 : 0] }
            return [values[0]]
        case 2:
            guard values.count >= 3 else { throw DecodeFailure(.corrupt, "truncated tRNS chunk") }
            return Array(values[0..<3])
        default: return nil  // Pillow ignores tRNS on images that already have alpha.
        }
    }

    /// Reverses the per-row filters; returns the filtered rows without their filter-type bytes.
    private static func unfilter(_ raw: [UInt8], at start: Int, rowBytes: Int, rows: Int,
                                 stride bpp: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: rowBytes * rows)
        try raw.withUnsafeBufferPointer { src in
            try out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<rows {
                    let filter = src[start + y * (rowBytes + 1)]
                    let s = src.baseAddress! + start + y * (rowBytes + 1) + 1, d = dst.baseAddress! + y * rowBytes
                    // The row above is zeros for a pass's first row; one switch per row keeps the loops tight.
                    let up: UnsafePointer<UInt8>? = y > 0 ? UnsafePointer(d - rowBytes) : nil
                    switch (filter, up) {
                    case (0, _), (2, nil): d.update(from: s, count: rowBytes)
                    case (1, _), (4, nil):  // Paeth with no row above reduces to Sub
                        for i in 0..<rowBytes { d[i] = s[i] &+ (i >= bpp ? d[i - bpp] : 0) }
                    case (2, let b?): for i in 0..<rowBytes { d[i] = s[i] &+ b[i] }
                    case (3, let b):
                        for i in 0..<rowBytes {
                            let a = i >= bpp ? Int(d[i - bpp]) : 0
                            d[i] = s[i] &+ UInt8((a + Int(b?[i] ?? 0)) >> 1)
                        }
                    case (4, let b?):
                        for i in 0..<rowBytes {
                            let a = i >= bpp ? Int(d[i - bpp]) : 0, c = i >= bpp ? Int(b[i - bpp]) : 0
                            let above = Int(b[i])
                            let p = a + above - c, pa = abs(p - a), pb = abs(p - above), pc = abs(p - c)
                            d[i] = s[i] &+ UInt8(pa <= pb && pa <= pc ? a : (pb <= pc ? above : c))
                        }
                    default: throw DecodeFailure(.corrupt, "invalid PNG filter type \(filter)")
                    }
                }
            }
        }
        return out
    }

    /// Unpacks one pass's rows into 8-bit samples at the pass's pixel positions.
    private static func scatter(_ rows: [UInt8], header: Header, pass: (Int, Int, Int, Int), size: (Int, Int),
                                into samples: inout [UInt8]) {
        let (x0, y0, dx, dy) = pass
        let channels = header.channels, depth = header.bitDepth, rowBytes = header.rowBytes(size.0)
        if depth == 8 && dx == 1 && dy == 1 {  // not interlaced: the rows already are the sample layout
            samples.replaceSubrange(0..<rows.count, with: rows)
            return
        }
        let isGray = header.colorType == 0
        // Gray is scaled to 0...255 the way Pillow's "1", "L;2" and "L;4" raw modes do; palette indices are not.
        let scale = isGray ? [1: 255, 2: 85, 4: 17, 8: 1][depth] ?? 1 : 1
        for y in 0..<size.1 {
            let row = y * rowBytes
            var out = ((y0 + y * dy) * header.width + x0) * channels
            for x in 0..<size.0 {
                for c in 0..<channels {
                    let value: Int
                    switch depth {
                    case 16:
                        let hi = Int(rows[row + (x * channels + c) * 2]), lo = Int(rows[row + (x * channels + c) * 2 + 1])
                        value = isGray ? (hi == 0 ? lo : 255) : hi
                    case 8: value = Int(rows[row + x * channels + c])
                    default:
                        let bit = x * depth
                        value = (Int(rows[row + bit >> 3]) >> (8 - depth - bit & 7) & (1 << depth - 1)) * scale
                    }
                    samples[out + c] = UInt8(value)
                }
                out += dx * channels
            }
        }
    }

    private static let crcTable: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func crc32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = crcTable[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }
}

func readBE32<C: RandomAccessCollection>(_ bytes: C, _ offset: C.Index) -> UInt32 where C.Element == UInt8,
    C.Index == Int {
    UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8
        | UInt32(bytes[offset + 3])
}

func readBE16<C: RandomAccessCollection>(_ bytes: C, _ offset: C.Index) -> Int where C.Element == UInt8,
    C.Index == Int {
    Int(bytes[offset]) << 8 | Int(bytes[offset + 1])
}
