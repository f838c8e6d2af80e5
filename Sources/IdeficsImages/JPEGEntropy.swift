/// A JPEG Huffman table as one lookup over the next 16 bits (MSB first): entry = code length << 8 | symbol,
/// 0 for bit patterns no code starts with.
struct JPEGHuffmanTable {
    var entries: [UInt16]

    init(counts: ArraySlice<UInt8>, symbols: ArraySlice<UInt8>) throws {
        entries = [UInt16](repeating: 0, count: 1 << 16)
        var code = 0, index = symbols.startIndex
        for (offset, count) in counts.enumerated() {
            let length = offset + 1
            for _ in 0..<Int(count) {
                guard code < 1 << length else { throw DecodeFailure(.corrupt, "invalid JPEG Huffman table") }
                let first = code << (16 - length), last = (code + 1) << (16 - length)
                let entry = UInt16(length << 8) | UInt16(symbols[index])
                for i in first..<last { entries[i] = entry }
                code += 1
                index += 1
            }
            code <<= 1
        }
    }
}

/// Reads entropy-coded bits: removes 0xFF00 stuffing, stops at markers and then supplies zero bits, counting
/// them so that decoding past the real data is reported instead of silently producing gray blocks.
struct JPEGBitReader {
    let bytes: [UInt8]
    private(set) var position: Int
    private var buffer: UInt64 = 0  // left-aligned
    private var count = 0
    private var insertedZeroBytes = 0
    private var atMarker = false

    init(bytes: [UInt8], position: Int) {
        self.bytes = bytes
        self.position = position
    }

    private mutating func fill() {
        while count <= 56 {
            var byte: UInt8 = 0
            if !atMarker && position < bytes.count {
                byte = bytes[position]
                if byte == 0xFF {
                    // FF 00 is a data byte; FF FF.. is fill before a marker; FF xx is a marker.
                    var next = position + 1
                    while next < bytes.count && bytes[next] == 0xFF { next += 1 }
                    if next < bytes.count && bytes[next] == 0 {
                        position = next + 1
                    } else {
                        atMarker = true
                        byte = 0
                        insertedZeroBytes += 1
                    }
                } else {
                    position += 1
                }
            } else {
                insertedZeroBytes += 1
            }
            buffer |= UInt64(byte) << UInt64(56 - count)
            count += 8
        }
    }

    /// Throws if any of the zero bits supplied past the data were used.
    func checkOverrun() throws {
        guard insertedZeroBytes * 8 > count else { return }
        if position >= bytes.count { throw DecodeFailure(.truncated, "JPEG data is truncated") }
        throw DecodeFailure(.corrupt, "JPEG entropy-coded data ends prematurely")
    }

    @inline(__always)
    mutating func bits(_ n: Int) -> Int {
        if n == 0 { return 0 }
        if count < n { fill() }
        let value = Int(buffer >> UInt64(64 - n))
        buffer <<= UInt64(n)
        count -= n
        return value
    }

    @inline(__always)
    mutating func decode(_ table: JPEGHuffmanTable) throws -> Int {
        if count < 16 { fill() }
        let entry = Int(table.entries[Int(buffer >> 48)])
        let length = entry >> 8
        guard length != 0 else { throw DecodeFailure(.corrupt, "invalid Huffman code in JPEG data") }
        buffer <<= UInt64(length)
        count -= length
        return entry & 0xFF
    }

    /// `n` bits as a signed coefficient (JPEG's HUFF_EXTEND).
    @inline(__always)
    mutating func receiveExtend(_ n: Int) -> Int {
        let value = bits(n)
        return n > 0 && value < 1 << (n - 1) ? value - (1 << n) + 1 : value
    }

    /// Drops the buffered bits and consumes the RSTn marker that must come next.
    mutating func restart() throws {
        buffer = 0
        count = 0
        insertedZeroBytes = 0
        atMarker = false
        while position + 1 < bytes.count && !(bytes[position] == 0xFF && bytes[position + 1] != 0
                                                && bytes[position + 1] != 0xFF) {
            position += 1
        }
        guard position + 1 < bytes.count else { throw DecodeFailure(.truncated, "JPEG data is truncated") }
        guard (0xD0...0xD7).contains(bytes[position + 1]) else {
            throw DecodeFailure(.corrupt, "expected a JPEG restart marker")
        }
        position += 2
    }
}

/// Zigzag index -> natural (row-major) index.
let jpegNaturalOrder: [Int] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21,
    28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61,
    54, 47, 55, 62, 63,
]

/// Per-block decoding of the four scan kinds (libjpeg's jdhuff.c / jdphuff.c semantics).
extension JPEGBitReader {
    mutating func decodeBaseline(_ block: UnsafeMutablePointer<Int16>, dc: inout Int, _ dcTable: JPEGHuffmanTable,
                                 _ acTable: JPEGHuffmanTable) throws {
        let size = try decode(dcTable)
        guard size <= 16 else { throw DecodeFailure(.corrupt, "invalid JPEG DC coefficient size") }
        dc += receiveExtend(size)
        block[0] = Int16(truncatingIfNeeded: dc)
        var k = 1
        while k < 64 {
            let rs = try decode(acTable)
            let run = rs >> 4, size = rs & 15
            if size != 0 {
                k += run
                guard k < 64 else { throw DecodeFailure(.corrupt, "JPEG coefficient index out of range") }
                block[jpegNaturalOrder[k]] = Int16(truncatingIfNeeded: receiveExtend(size))
            } else if run != 15 {
                break
            } else {
                k += 15
            }
            k += 1
        }
    }

    mutating func decodeDCFirst(_ block: UnsafeMutablePointer<Int16>, dc: inout Int, _ table: JPEGHuffmanTable,
                                shift: Int) throws {
        let size = try decode(table)
        guard size <= 16 else { throw DecodeFailure(.corrupt, "invalid JPEG DC coefficient size") }
        dc += receiveExtend(size)
        block[0] = Int16(truncatingIfNeeded: dc << shift)
    }

    mutating func decodeDCRefine(_ block: UnsafeMutablePointer<Int16>, shift: Int) {
        if bits(1) != 0 { block[0] |= Int16(truncatingIfNeeded: 1 << shift) }
    }

    mutating func decodeACFirst(_ block: UnsafeMutablePointer<Int16>, _ table: JPEGHuffmanTable, start: Int, end: Int,
                                shift: Int, eobRun: inout Int) throws {
        if eobRun > 0 {
            eobRun -= 1
            return
        }
        var k = start
        while k <= end {
            let rs = try decode(table)
            let run = rs >> 4, size = rs & 15
            if size != 0 {
                k += run
                guard k < 64 else { throw DecodeFailure(.corrupt, "JPEG coefficient index out of range") }
                block[jpegNaturalOrder[k]] = Int16(truncatingIfNeeded: receiveExtend(size) << shift)
            } else if run == 15 {
                k += 15
            } else {
                eobRun = (1 << run) + bits(run) - 1
                break
            }
            k += 1
        }
    }

    mutating func decodeACRefine(_ block: UnsafeMutablePointer<Int16>, _ table: JPEGHuffmanTable, start: Int,
                                 end: Int, shift: Int, eobRun: inout Int) throws {
        let plus = 1 << shift, minus = -1 << shift
        // A correction bit for an already nonzero coefficient raises its magnitude by one step.
        func refine(_ position: Int) {
            let value = Int(block[position])
            if bits(1) != 0 && value & plus == 0 {
                block[position] = Int16(truncatingIfNeeded: value + (value >= 0 ? plus : minus))
            }
        }
        var k = start
        if eobRun == 0 {
            while k <= end {
                let rs = try decode(table)
                var run = rs >> 4
                var newValue = 0
                if rs & 15 != 0 {
                    newValue = bits(1) != 0 ? plus : minus
                } else if run != 15 {
                    eobRun = (1 << run) + bits(run)
                    break
                }
                // Skip `run` zero coefficients (refining nonzero ones on the way), then place the new one.
                while k <= end {
                    let position = jpegNaturalOrder[k]
                    if block[position] != 0 {
                        refine(position)
                    } else {
                        if run == 0 { break }
                        run -= 1
                    }
                    k += 1
                }
                if newValue != 0 {
                    guard k <= end else { throw DecodeFailure(.corrupt, "JPEG coefficient index out of range") }
                    block[jpegNaturalOrder[k]] = Int16(truncatingIfNeeded: newValue)
                }
                k += 1
            }
        }
        if eobRun > 0 {
            while k <= end {
                let position = jpegNaturalOrder[k]
                if block[position] != 0 { refine(position) }
                k += 1
            }
            eobRun -= 1
        }
    }
}
