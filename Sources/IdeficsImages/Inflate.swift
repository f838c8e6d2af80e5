/// zlib (RFC 1950) around DEFLATE (RFC 1951): stored, fixed and dynamic Huffman blocks, adler32 verified.
///
/// The output size is bounded by the caller (PNG knows it exactly from the header), so a hostile stream can never
/// grow memory past what the header promised, and zero-padding past the input end is detected as truncation.
enum Inflate {
    static func zlibDecompress(_ input: [UInt8], outputSize: Int) throws -> [UInt8] {
        guard input.count >= 2 else { throw DecodeFailure(.truncated, "zlib stream is truncated") }
        let cmf = Int(input[0]), flg = Int(input[1])
        guard cmf & 0x0F == 8, cmf >> 4 <= 7, (cmf << 8 | flg) % 31 == 0 else {
            throw DecodeFailure(.corrupt, "invalid zlib header")
        }
        guard flg & 0x20 == 0 else { throw DecodeFailure(.unsupported, "zlib preset dictionaries are not supported") }
        var output = [UInt8](repeating: 0, count: outputSize)
        let (written, end) = try input.withUnsafeBufferPointer { inBuf in
            try output.withUnsafeMutableBufferPointer { outBuf in
                var state = InflateState(input: inBuf, position: 2, output: outBuf)
                try state.run()
                return (state.written, state.alignedPosition())
            }
        }
        guard written == outputSize else {
            throw DecodeFailure(.truncated, "compressed data ends after \(written) of \(outputSize) bytes")
        }
        guard end + 4 <= input.count else { throw DecodeFailure(.truncated, "zlib stream is missing its checksum") }
        let stored = UInt32(input[end]) << 24 | UInt32(input[end + 1]) << 16 | UInt32(input[end + 2]) << 8
            | UInt32(input[end + 3])
        guard adler32(output) == stored else { throw DecodeFailure(.checksumMismatch, "zlib adler32 checksum mismatch") }
        return output
    }

    static func adler32(_ bytes: [UInt8]) -> UInt32 {
        var a: UInt32 = 1, b: UInt32 = 0
        var index = 0
        while index < bytes.count {
            // 5552 is the largest run for which b cannot overflow 32 bits before the modulo.
            let end = min(index + 5552, bytes.count)
            while index < end {
                a &+= UInt32(bytes[index])
                b &+= a
                index += 1
            }
            a %= 65521
            b %= 65521
        }
        return b << 16 | a
    }
}

/// A canonical Huffman code as one flat lookup table indexed by the next `bits` input bits (LSB first):
/// entry = symbol << 4 | code length, 0 for bit patterns no code uses.
struct HuffmanTable {
    private(set) var entries: [UInt16]
    private(set) var bits: Int

    init(lengths: ArraySlice<UInt8>) throws {
        var counts = [Int](repeating: 0, count: 16)
        for length in lengths { counts[Int(length)] += 1 }
        counts[0] = 0
        var left = 1
        for length in 1...15 {
            left = left << 1 - counts[length]
            guard left >= 0 else { throw DecodeFailure(.corrupt, "over-subscribed Huffman code") }
        }
        bits = max(1, (1...15).last { counts[$0] > 0 } ?? 1)
        entries = [UInt16](repeating: 0, count: 1 << bits)
        var nextCode = [Int](repeating: 0, count: 16)
        var code = 0
        for length in 1...15 {
            code = (code + counts[length - 1]) << 1
            nextCode[length] = code
        }
        for (offset, length8) in lengths.enumerated() where length8 > 0 {
            let length = Int(length8)
            let codeValue = nextCode[length]
            nextCode[length] += 1
            var reversed = 0
            for bit in 0..<length where codeValue & (1 << bit) != 0 { reversed |= 1 << (length - 1 - bit) }
            let entry = UInt16(offset << 4 | length)
            var index = reversed
            while index < entries.count {
                entries[index] = entry
                index += 1 << length
            }
        }
    }
}

private struct InflateState {
    let input: UnsafeBufferPointer<UInt8>
    /// Next input byte to load; may run past the end, in which case zeros are loaded (see `checkOverrun`).
    var position: Int
    let output: UnsafeMutableBufferPointer<UInt8>
    var written = 0
    var bitBuffer: UInt64 = 0
    var bitCount = 0

    init(input: UnsafeBufferPointer<UInt8>, position: Int, output: UnsafeMutableBufferPointer<UInt8>) {
        self.input = input
        self.position = position
        self.output = output
    }

    private static let lengthBase: [Int] = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59,
                                            67, 83, 99, 115, 131, 163, 195, 227, 258]
    private static let lengthExtra: [Int] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4,
                                             5, 5, 5, 5, 0]
    private static let distanceBase: [Int] = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385,
                                              513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
    private static let distanceExtra: [Int] = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10,
                                               10, 11, 11, 12, 12, 13, 13]
    private static let codeLengthOrder: [Int] = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]
    private static let fixedTables: (HuffmanTable, HuffmanTable) = {
        var lengths = [UInt8](repeating: 8, count: 288)
        for i in 144..<256 { lengths[i] = 9 }
        for i in 256..<280 { lengths[i] = 7 }
        let distances = [UInt8](repeating: 5, count: 30)
        // These lengths are valid by construction.
        return (try! HuffmanTable(lengths: lengths[...]), try! HuffmanTable(lengths: distances[...]))
    }()

    @inline(__always)
    private mutating func refill() {
        while bitCount <= 56 {
            if position < input.count { bitBuffer |= UInt64(input[position]) << UInt64(bitCount) }
            position += 1
            bitCount += 8
        }
    }

    /// Zeros loaded past the input end only decode to garbage; a few bytes of look-ahead are normal.
    @inline(__always)
    private func checkOverrun() throws {
        if position - bitCount / 8 > input.count {
            throw DecodeFailure(.truncated, "compressed data is truncated")
        }
    }

    @inline(__always)
    private mutating func take(_ count: Int) -> Int {
        if bitCount < count { refill() }
        let value = Int(bitBuffer & ((1 << UInt64(count)) - 1))
        bitBuffer >>= UInt64(count)
        bitCount -= count
        return value
    }

    @inline(__always)
    private mutating func decode(_ table: HuffmanTable) throws -> Int {
        if bitCount < 15 { refill() }
        let entry = Int(table.entries[Int(truncatingIfNeeded: bitBuffer) & ((1 << table.bits) - 1)])
        let length = entry & 15
        guard length != 0 else { throw DecodeFailure(.corrupt, "invalid Huffman code in compressed data") }
        bitBuffer >>= UInt64(length)
        bitCount -= length
        return entry >> 4
    }

    /// Byte position just after the last consumed bit, once the stream has ended on a byte boundary.
    func alignedPosition() -> Int { position - bitCount / 8 }

    mutating func run() throws {
        var last = false
        while !last {
            last = take(1) == 1
            switch take(2) {
            case 0: try storedBlock()
            case 1: try huffmanBlock(Self.fixedTables.0, Self.fixedTables.1)
            case 2:
                let (literals, distances) = try dynamicTables()
                try huffmanBlock(literals, distances)
            default: throw DecodeFailure(.corrupt, "invalid DEFLATE block type")
            }
            try checkOverrun()
        }
        // Drop the partial byte so `alignedPosition` points at the adler32 trailer.
        _ = take(bitCount % 8)
    }

    private mutating func storedBlock() throws {
        _ = take(bitCount % 8)
        let length = take(16), complement = take(16)
        try checkOverrun()
        guard length ^ complement == 0xFFFF else { throw DecodeFailure(.corrupt, "invalid stored block length") }
        // Hand the whole bytes still buffered back to the input, then copy straight from it.
        position -= bitCount / 8
        bitBuffer = 0
        bitCount = 0
        guard position + length <= input.count else { throw DecodeFailure(.truncated, "compressed data is truncated") }
        guard written + length <= output.count else { throw try tooMuchData() }
        for i in 0..<length { output[written + i] = input[position + i] }
        written += length
        position += length
    }

    private mutating func dynamicTables() throws -> (HuffmanTable, HuffmanTable) {
        let literalCount = take(5) + 257, distanceCount = take(5) + 1, codeLengthCount = take(4) + 4
        guard literalCount <= 286, distanceCount <= 30 else {
            throw DecodeFailure(.corrupt, "invalid dynamic Huffman header")
        }
        var codeLengthLengths = [UInt8](repeating: 0, count: 19)
        for i in 0..<codeLengthCount { codeLengthLengths[Self.codeLengthOrder[i]] = UInt8(take(3)) }
        let codeLengthTable = try HuffmanTable(lengths: codeLengthLengths[...])
        var lengths = [UInt8](repeating: 0, count: literalCount + distanceCount)
        var index = 0
        while index < lengths.count {
            let symbol = try decode(codeLengthTable)
            let value: UInt8, repeatCount: Int
            switch symbol {
            case 0..<16: value = UInt8(symbol); repeatCount = 1
            case 16:
                guard index > 0 else { throw DecodeFailure(.corrupt, "invalid code length repeat") }
                value = lengths[index - 1]; repeatCount = 3 + take(2)
            case 17: value = 0; repeatCount = 3 + take(3)
            default: value = 0; repeatCount = 11 + take(7)
            }
            guard index + repeatCount <= lengths.count else {
                throw DecodeFailure(.corrupt, "invalid code length repeat")
            }
            for i in index..<(index + repeatCount) { lengths[i] = value }
            index += repeatCount
            try checkOverrun()
        }
        guard lengths[256] != 0 else { throw DecodeFailure(.corrupt, "missing end-of-block code") }
        return (try HuffmanTable(lengths: lengths[0..<literalCount]),
                try HuffmanTable(lengths: lengths[literalCount...]))
    }

    /// Zero padding past a truncated input can decode as literals too, so truncation is reported first.
    private func tooMuchData() throws -> DecodeFailure {
        try checkOverrun()
        return DecodeFailure(.corrupt, "compressed data holds more than the expected \(output.count) bytes")
    }

    private mutating func huffmanBlock(_ literals: HuffmanTable, _ distances: HuffmanTable) throws {
        while true {
            let symbol = try decode(literals)
            if symbol < 256 {
                guard written < output.count else { throw try tooMuchData() }
                output[written] = UInt8(symbol)
                written += 1
                continue
            }
            if symbol == 256 { return }
            try checkOverrun()
            let lengthIndex = symbol - 257
            guard lengthIndex < 29 else { throw DecodeFailure(.corrupt, "invalid length symbol") }
            let length = Self.lengthBase[lengthIndex] + take(Self.lengthExtra[lengthIndex])
            let distanceSymbol = try decode(distances)
            guard distanceSymbol < 30 else { throw DecodeFailure(.corrupt, "invalid distance symbol") }
            let distance = Self.distanceBase[distanceSymbol] + take(Self.distanceExtra[distanceSymbol])
            guard distance <= written else { throw DecodeFailure(.corrupt, "distance too far back") }
            guard written + length <= output.count else { throw try tooMuchData() }
            // Byte by byte: overlapping copies (distance < length) repeat the recent output by design.
            var from = written - distance
            for _ in 0..<length {
                output[written] = output[from]
                written += 1
                from += 1
            }
        }
    }
}
