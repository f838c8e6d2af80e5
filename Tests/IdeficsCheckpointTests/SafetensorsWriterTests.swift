import Foundation
import IdeficsCheckpoint
import IdeficsTensors
import TestSupport
import XCTest

/// This target's own `SafetensorsWriter` builds raw (also broken) files; these tests are about the library's.
private typealias Writer = IdeficsCheckpoint.SafetensorsWriter

final class SafetensorsWriterTests: XCTestCase {
    private func roundTrip(_ writer: Writer) throws -> (SafetensorsFile, Data) {
        let url = try temporaryDirectory().appendingPathComponent("out.safetensors")
        try writer.write(to: url.path)
        return (try SafetensorsFile(path: url.path), try Data(contentsOf: url))
    }

    func testRoundTripsThroughTheReader() throws {
        var writer = Writer(metadata: ["format": "pt"])
        try writer.add("mask", shape: [2, 3], uint8s: [1, 1, 0, 1, 0, 0])
        try writer.add("values", shape: [1, 3], floats: [0.5, -1, .infinity])
        let bf16: [UInt8] = [0x80, 0x3F, 0x00, 0xC0]  // 1.0, -2.0
        try writer.add("half", dtype: .bf16, shape: [2], bytes: Data(bf16))
        try writer.add("empty", shape: [0, 4], floats: [])
        let (file, data) = try roundTrip(writer)

        XCTAssertEqual(file.metadata, ["format": "pt"])
        XCTAssertEqual(Set(file.entries.keys), ["mask", "values", "half", "empty"])
        XCTAssertEqual(file.tensor("values")?.floats(), [0.5, -1, .infinity])
        XCTAssertEqual(file.tensor("half")?.floats(), [1, -2])
        let mask = try XCTUnwrap(file.tensor("mask"))
        XCTAssertEqual(mask.dtype, .u8)
        XCTAssertEqual(mask.shape, [2, 3])
        XCTAssertEqual(Array(UnsafeRawBufferPointer(start: mask.data, count: mask.byteCount)), [1, 1, 0, 1, 0, 0])
        XCTAssertEqual(file.tensor("empty")?.shape, [0, 4])

        // Data starts 8-byte aligned; larger elements first, then by name, back to back with no gaps.
        let headerLength = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        XCTAssertEqual(headerLength % 8, 0)
        let ranges = ["empty", "values", "half", "mask"].map { file.entries[$0]!.byteRange }
        XCTAssertEqual(ranges, [0..<0, 0..<12, 12..<16, 16..<22])
        XCTAssertEqual(data.count, 8 + headerLength + 22)
    }

    func testWithoutMetadataTheHeaderHasNone() throws {
        var writer = Writer()
        try writer.add("x", shape: [], floats: [3])
        let (file, data) = try roundTrip(writer)
        XCTAssertEqual(file.tensor("x")?.floats(), [3])
        XCTAssertFalse(String(decoding: data, as: UTF8.self).contains("__metadata__"))
    }

    func testRejectsWrongSizesAndDuplicates() throws {
        var writer = Writer()
        XCTAssertThrowsError(try writer.add("x", shape: [2, 2], floats: [1, 2, 3])) {
            XCTAssertEqual("\($0)", "tensor x with shape [2, 2] of F32 cannot hold 12 bytes")
        }
        try writer.add("x", shape: [1], floats: [1])
        XCTAssertThrowsError(try writer.add("x", shape: [1], uint8s: [1])) {
            XCTAssertEqual($0 as? Writer.Failure, .duplicateTensor(name: "x"))
        }
        XCTAssertThrowsError(try writer.write(to: "/nonexistent-dir/out.safetensors")) {
            XCTAssertTrue("\($0)".hasPrefix("/nonexistent-dir/out.safetensors: cannot be written"), "\($0)")
        }
    }

    /// The streamed form writes the same file as `data()` from tensors left in their memory or made as they are
    /// written (each made once, when its turn comes, and let go after), and refuses a name given twice.
    func testStreamedTensorsAreWrittenFromTheirMemoryOrMadeInTurn() throws {
        let values: [Float] = [1, -2, 0.5]
        var made = [String]()
        let owner = Owner(floats: [4, 8])
        let url = try temporaryDirectory().appendingPathComponent("out.safetensors")
        try values.withUnsafeBytes { bytes in
            let tensors = [Writer.Streamed(name: "kept", dtype: .f32, shape: [3], bytes: bytes),
                           Writer.Streamed(name: "made", dtype: .f32, shape: [2]) {
                               made.append("made")
                               return WeightTensor(name: "made", dtype: .f32, shape: [2], data: owner.bytes, owner: owner)
                           }]
            try Writer.write(tensors, metadata: ["format": "pt"], to: url.path)
            XCTAssertThrowsError(try Writer.write(tensors + [tensors[0]], to: url.path + "2")) {
                XCTAssertEqual($0 as? Writer.Failure, .duplicateTensor(name: "kept"))
            }
        }
        XCTAssertEqual(made, ["made"])
        let file = try SafetensorsFile(path: url.path)
        XCTAssertEqual(file.tensor("kept")?.floats(), values)
        XCTAssertEqual(file.tensor("made")?.floats(), [4, 8])
        var writer = Writer(metadata: ["format": "pt"])
        try writer.add("kept", shape: [3], floats: values)
        try writer.add("made", shape: [2], floats: [4, 8])
        XCTAssertEqual(try Data(contentsOf: url), try writer.data())
    }
}

/// Memory behind a made tensor.
private final class Owner {
    let bytes: UnsafeMutableRawPointer
    init(floats: [Float]) {
        bytes = .allocate(byteCount: floats.count * 4, alignment: 64)
        bytes.copyMemory(from: floats, byteCount: floats.count * 4)
    }
    deinit { bytes.deallocate() }
}
