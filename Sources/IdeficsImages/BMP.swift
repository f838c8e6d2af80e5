/// Uncompressed 24- and 32-bit BMP. As in Pillow, 32-bit BI_RGB ignores the fourth byte ("BGRX") and
/// BI_BITFIELDS with the standard masks keeps alpha only when the alpha mask is 0xFF000000.
enum BMPDecoder {
    static func decode(_ bytes: [UInt8], limits: ImageLimits) throws -> DecodedImage {
        func u32(_ at: Int) -> Int {
            Int(bytes[at]) | Int(bytes[at + 1]) << 8 | Int(bytes[at + 2]) << 16 | Int(bytes[at + 3]) << 24
        }
        guard bytes.count >= 30 else { throw DecodeFailure(.truncated, "BMP header is truncated") }
        let dataOffset = u32(10), headerSize = u32(14)
        guard headerSize >= 40 else { throw DecodeFailure(.unsupported, "BMP core (OS/2) headers are not supported") }
        guard bytes.count >= 14 + headerSize, bytes.count >= 54 else {
            throw DecodeFailure(.truncated, "BMP header is truncated")
        }
        let width = Int(Int32(truncatingIfNeeded: u32(18))), rawHeight = Int(Int32(truncatingIfNeeded: u32(22)))
        let bits = Int(bytes[28]) | Int(bytes[29]) << 8, compression = u32(30)
        let topDown = rawHeight < 0, height = abs(rawHeight)
        try limits.check(width: width, height: height)
        var hasAlpha = false
        switch (bits, compression) {
        case (24, 0), (32, 0): break
        case (32, 3):
            // Masks follow a 40-byte header, or live inside V4/V5 headers at the same offset.
            guard bytes.count >= 70 else { throw DecodeFailure(.truncated, "BMP header is truncated") }
            let masks = (u32(54), u32(58), u32(62), headerSize >= 56 ? u32(66) : 0)
            guard masks.0 == 0xFF0000, masks.1 == 0xFF00, masks.2 == 0xFF, [0, 0xFF00_0000].contains(masks.3) else {
                throw DecodeFailure(.unsupported, "BMP bit field masks other than BGRA are not supported")
            }
            hasAlpha = masks.3 != 0
        default:
            throw DecodeFailure(.unsupported, "BMP with \(bits) bits per pixel and compression \(compression) "
                                + "is not supported (only uncompressed 24/32-bit)")
        }
        let pixelBytes = bits / 8, rowBytes = (width * pixelBytes + 3) & ~3
        guard dataOffset >= 0, dataOffset + rowBytes * height <= bytes.count else {
            throw DecodeFailure(.truncated, "BMP pixel data is truncated")
        }
        let channels = hasAlpha ? 4 : 3
        var samples = [UInt8](repeating: 0, count: width * height * channels)
        for y in 0..<height {
            let row = dataOffset + (topDown ? y : height - 1 - y) * rowBytes
            for x in 0..<width {
                let s = row + x * pixelBytes, d = (y * width + x) * channels
                samples[d] = bytes[s + 2]
                samples[d + 1] = bytes[s + 1]
                samples[d + 2] = bytes[s]
                if hasAlpha { samples[d + 3] = bytes[s + 3] }
            }
        }
        return DecodedImage(width: width, height: height, layout: hasAlpha ? .rgba : .rgb, samples: samples)
    }
}
