/// Binary PGM (P5) and PPM (P6). maxval other than 255 is rescaled like Pillow's PpmDecoder
/// (`round(v / maxval * out_max)`, half to even); 16-bit gray becomes Pillow's "I" mode, clipped to 255 for RGB.
enum PNMDecoder {
    static func decode(_ bytes: [UInt8], limits: ImageLimits) throws -> DecodedImage {
        let channels = bytes[1] == 0x36 ? 3 : 1
        var offset = 2
        func token() throws -> Int {
            while offset < bytes.count {
                if bytes[offset] == 0x23 {  // '#' comment to end of line
                    while offset < bytes.count && bytes[offset] != 0x0A && bytes[offset] != 0x0D { offset += 1 }
                } else if [0x20, 0x09, 0x0A, 0x0D, 0x0B, 0x0C].contains(bytes[offset]) {
                    offset += 1
                } else {
                    break
                }
            }
            var value = 0, digits = 0
            while offset < bytes.count, (0x30...0x39).contains(bytes[offset]) {
                value = value * 10 + Int(bytes[offset] - 0x30)
                digits += 1
                offset += 1
                guard digits <= 10 else { throw DecodeFailure(.corrupt, "PNM header number too long") }
            }
            guard digits > 0 else {
                throw offset >= bytes.count ? DecodeFailure(.truncated, "PNM header is truncated")
                    : DecodeFailure(.corrupt, "invalid PNM header")
            }
            return value
        }
        let width = try token(), height = try token(), maxval = try token()
        guard (1..<65536).contains(maxval) else {
            throw DecodeFailure(.corrupt, "PNM maxval must be greater than 0 and less than 65536")
        }
        try limits.check(width: width, height: height)
        offset += 1  // the single whitespace byte after maxval
        let sampleBytes = maxval < 256 ? 1 : 2
        let count = width * height * channels
        guard offset + count * sampleBytes <= bytes.count else {
            throw DecodeFailure(.truncated, "PNM pixel data is truncated")
        }
        // Gray above 8 bits is Pillow's 32-bit "I" mode (0...65535), which clips to 255 when converted to RGB.
        let outMax = channels == 1 && maxval > 255 ? 65535 : 255
        var samples = [UInt8](repeating: 0, count: count)
        for i in 0..<count {
            let raw = sampleBytes == 1 ? Int(bytes[offset + i]) : readBE16(bytes, offset + 2 * i)
            let scaled = maxval == outMax ? raw
                : min(outMax, Int((Double(raw) / Double(maxval) * Double(outMax)).rounded(.toNearestOrEven)))
            samples[i] = UInt8(min(scaled, 255))
        }
        return DecodedImage(width: width, height: height, layout: channels == 3 ? .rgb : .gray, samples: samples)
    }
}
