import Foundation
import XCTest
@testable import IdeficsImages

/// Malformed input must produce a typed error naming the source and the problem, never a crash or a hang.
final class DecodeErrorTests: XCTestCase {
    /// A small valid PNG (33x27 8-bit gray, all five filters).
    private func samplePNG() throws -> [UInt8] { try ImageFixtures.bytes("inputs/gray8_n.png") }

    private func assertError(_ bytes: [UInt8], _ kind: ImageError.Kind, _ message: String,
                             limits: ImageLimits = ImageLimits(), file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try ImageDecoder.decode(bytes, source: "test.png", limits: limits), file: file,
                             line: line) { error in
            guard let error = error as? ImageError else { return XCTFail("untyped error \(error)", file: file, line: line) }
            XCTAssertEqual(error.kind, kind, file: file, line: line)
            XCTAssertEqual(error.description, message, file: file, line: line)
        }
    }

    /// Rewrites chunk `index` (0 = IHDR) with `transform` applied to its data, fixing its CRC.
    private func editingChunk(_ png: [UInt8], _ type: String, _ transform: (inout [UInt8]) -> Void) -> [UInt8] {
        var offset = 8
        while offset < png.count {
            let length = Int(readBE32(png, offset))
            if String(decoding: png[(offset + 4)..<(offset + 8)], as: UTF8.self) == type {
                var data = Array(png[(offset + 8)..<(offset + 8 + length)])
                transform(&data)
                var chunk = [UInt8](repeating: 0, count: 4) + Array(type.utf8) + data
                withUnsafeBytes(of: UInt32(data.count).bigEndian) { chunk.replaceSubrange(0..<4, with: $0) }
                let crc = PNGDecoder.crc32(chunk[4...])
                withUnsafeBytes(of: crc.bigEndian) { chunk.append(contentsOf: $0) }
                return Array(png[..<offset]) + chunk + Array(png[(offset + 12 + length)...])
            }
            offset += 12 + length
        }
        XCTFail("no \(type) chunk")
        return png
    }

    func testUnknownFormatAndEmpty() {
        assertError(Array("hello".utf8), .unknownFormat,
                    "test.png: unknown image format (supported: PNG, JPEG, PPM/PGM, BMP)")
        assertError([], .unknownFormat, "test.png: empty image data")
    }

    func testTruncatedPNG() throws {
        let png = try samplePNG()
        assertError(Array(png[..<(png.count / 2)]), .truncated, "test.png: PNG file is truncated in chunk IDAT")
        assertError(Array(png[..<20]), .truncated, "test.png: PNG file is truncated in chunk IHDR")
    }

    func testChecksums() throws {
        var png = try samplePNG()
        png[20] ^= 1  // inside IHDR data
        assertError(png, .checksumMismatch, "test.png: PNG chunk IHDR has a bad CRC")
        let badAdler = editingChunk(try samplePNG(), "IDAT") { $0[$0.count - 1] ^= 0xFF }
        assertError(badAdler, .checksumMismatch, "test.png: zlib adler32 checksum mismatch")
    }

    func testCorruptDeflate() throws {
        // First block header bits: BFINAL=1, BTYPE=3 (reserved).
        let png = editingChunk(try samplePNG(), "IDAT") { $0[2] = 0b111 }
        assertError(png, .corrupt, "test.png: invalid DEFLATE block type")
        let shortData = editingChunk(try samplePNG(), "IDAT") { $0.removeLast(40) }
        XCTAssertThrowsError(try ImageDecoder.decode(shortData, source: "test.png")) { error in
            XCTAssertEqual((error as? ImageError)?.kind, .truncated)
        }
    }

    func testDimensionsAndPixelLimit() throws {
        let zeroWidth = editingChunk(try samplePNG(), "IHDR") { $0[0...3] = [0, 0, 0, 0] }
        assertError(zeroWidth, .invalidDimensions, "test.png: invalid image size 0x27")
        // 100000 x 100000 8-bit gray: refused from the header, nothing allocated.
        let huge = editingChunk(try samplePNG(), "IHDR") { $0[0...7] = [0, 1, 0x86, 0xA0, 0, 1, 0x86, 0xA0] }
        assertError(huge, .tooManyPixels,
                    "test.png: image size 100000x100000 exceeds the limit of 100000000 pixels")
        assertError(try samplePNG(), .tooManyPixels, "test.png: image size 33x27 exceeds the limit of 500 pixels",
                    limits: ImageLimits(maxPixels: 500))
        let badDepth = editingChunk(try samplePNG(), "IHDR") { $0[8] = 3 }
        assertError(badDepth, .corrupt, "test.png: invalid PNG color type 0 with bit depth 3")
    }

    func testJPEGErrors() throws {
        let jpeg = try ImageFixtures.bytes("inputs/astro_420_base.jpg")
        assertError(Array(jpeg[..<(jpeg.count * 2 / 3)]), .truncated, "test.png: JPEG data is truncated")
        assertError(Array(jpeg.dropLast(2)), .truncated, "test.png: JPEG file is truncated")
        // Replace the SOF0 marker by SOF3 (lossless) and SOF9 (arithmetic).
        let sof = try XCTUnwrap((0..<(jpeg.count - 1)).first { jpeg[$0] == 0xFF && jpeg[$0 + 1] == 0xC0 })
        for marker: UInt8 in [0xC3, 0xC9] {
            var other = jpeg
            other[sof + 1] = marker
            assertError(other, .unsupported,
                        "test.png: lossless, hierarchical and arithmetic-coded JPEG are not supported")
        }
        // Pillow (libjpeg) cannot decode fractional sampling factors either.
        assertError(try ImageFixtures.bytes("inputs/layout_fractional.jpg"), .unsupported,
                    "test.png: JPEG with fractional chroma sampling is not supported")
        var huge = jpeg
        huge.replaceSubrange((sof + 5)..<(sof + 9), with: [0xFF, 0xFF, 0xFF, 0xFF])
        assertError(huge, .tooManyPixels, "test.png: image size 65535x65535 exceeds the limit of 100000000 pixels")
        // Entropy-coded data of all-ones bytes is no valid Huffman code sequence.
        let sos = try XCTUnwrap((0..<(jpeg.count - 1)).first { jpeg[$0] == 0xFF && jpeg[$0 + 1] == 0xDA })
        var garbage = jpeg
        let dataStart = sos + 2 + Int(jpeg[sos + 2]) << 8 + Int(jpeg[sos + 3])
        for i in dataStart..<(dataStart + 64) { garbage[i] = 0xFE }
        XCTAssertThrowsError(try ImageDecoder.decode(garbage)) { error in
            XCTAssertEqual((error as? ImageError)?.kind, .corrupt, "\(error)")
        }
    }

    func testUnsupportedBMP() {
        var bmp = [UInt8](repeating: 0, count: 80)
        bmp[0] = 0x42; bmp[1] = 0x4D
        bmp[14] = 40; bmp[18] = 2; bmp[22] = 2; bmp[28] = 8
        assertError(bmp, .unsupported,
                    "test.png: BMP with 8 bits per pixel and compression 0 is not supported (only uncompressed 24/32-bit)")
    }

    func testSourcesNameTheProblem() throws {
        XCTAssertThrowsError(try ImageDecoder.decode(.file("/nonexistent/cat.png"))) { error in
            XCTAssertEqual("\(error)", "/nonexistent/cat.png: No such file or directory")
        }
        XCTAssertThrowsError(try ImageDecoder.decode(.dataURI("data:image/png;base64,AAAA"))) { error in
            XCTAssertEqual("\(error)", "data URI: unknown image format (supported: PNG, JPEG, PPM/PGM, BMP)")
        }
        XCTAssertThrowsError(try ImageDecoder.decode(.dataURI("data:image/png,plain"))) { error in
            XCTAssertEqual("\(error)", "data URI: data URI is not base64-encoded")
        }
        let png = try samplePNG()
        let uri = "data:image/png;base64," + Data(png).base64EncodedString()
        XCTAssertEqual(try ImageDecoder.decode(.dataURI(uri)), try ImageDecoder.decode(.bytes(png)))
    }

    /// Random byte flips, truncations and insertions: every outcome is an image or an `ImageError`.
    func testMutatedInputsNeverCrash() throws {
        var generator = SplitMix(seed: 42)
        let seeds = try ["inputs/gray8_n.png", "inputs/pal2_i.png", "inputs/rgba8_i.png", "inputs/rgb24.bmp",
                         "inputs/rgb.ppm", "inputs/astro_420_prog.jpg", "inputs/tiny_422_17x9.jpg"].map(ImageFixtures.bytes)
        for _ in 0..<700 {
            func mutate(_ bytes: inout [UInt8]) {
                for _ in 0..<(1 + Int(generator.next() % 4)) where !bytes.isEmpty {
                    let position = Int(generator.next() % UInt64(bytes.count))
                    switch generator.next() % 3 {
                    case 0: bytes[position] = UInt8(truncatingIfNeeded: generator.next())
                    case 1: bytes.removeSubrange(position...)
                    default: bytes.insert(UInt8(truncatingIfNeeded: generator.next()), at: position)
                    }
                }
            }
            let seed = Int(generator.next() % UInt64(seeds.count))
            var bytes = seeds[seed]
            // PNGs (the first three seeds): half the time damage the compressed stream behind a valid CRC, to
            // reach the inflater.
            if seed < 3 && generator.next() % 2 == 0 {
                bytes = editingChunk(bytes, "IDAT") { mutate(&$0) }
            } else {
                mutate(&bytes)
            }
            do {
                _ = try ImageDecoder.decode(bytes, limits: ImageLimits(maxPixels: 1 << 20)).rgb()
            } catch is ImageError {}
        }
    }
}

/// Deterministic pseudo-random numbers for the mutation test.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
