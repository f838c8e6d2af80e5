import Foundation
import IdeficsCheckpoint
import IdeficsTensors
import TestSupport
import XCTest

final class SafetensorsTests: XCTestCase {
    private func write(_ data: Data) throws -> String {
        let url = try temporaryDirectory().appendingPathComponent("model.safetensors")
        try data.write(to: url)
        return url.path
    }

    private func assertInvalid(_ data: Data, contains message: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let path = try write(data)
        XCTAssertThrowsError(try SafetensorsFile(path: path), file: file, line: line) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(path), "message does not name the file: \(text)", file: file, line: line)
            XCTAssertTrue(text.contains(message), "expected “\(message)” in: \(text)", file: file, line: line)
        }
    }

    func testReadsTensorsInPlaceInTheirStoredDType() throws {
        let path = try write(SafetensorsWriter.file([
            .init(name: "a", shape: [2, 2], values: [1, 2, 3, 4]),
            .init(name: "b", dtype: "BF16", shape: [3], values: [0.5, -2, 1024]),
        ]))
        let file = try SafetensorsFile(path: path)
        XCTAssertEqual(file.tensor("a")?.floats(), [1, 2, 3, 4])
        XCTAssertEqual(file.tensor("b")?.dtype, .bf16)
        XCTAssertEqual(file.tensor("b")?.floats(), [0.5, -2, 1024])
        XCTAssertNil(file.tensor("c"))
    }

    func testTruncatedDataIsReported() throws {
        var data = SafetensorsWriter.file([.init(name: "w", shape: [4], values: [1, 2, 3, 4])])
        data.removeLast(3)
        try assertInvalid(data, contains: "tensor w has data_offsets [0, 16] outside the 13 data bytes")
    }

    func testShorterThanHeaderLength() throws {
        try assertInvalid(Data([1, 2, 3]), contains: "shorter than the 8-byte header length")
    }

    func testHeaderLengthPastEndOfFile() throws {
        try assertInvalid(SafetensorsWriter.file(header: "{}", payload: Data(), declaredHeaderLength: 4096),
                          contains: "header length 4096 runs past the end of the file")
    }

    func testHeaderTooLarge() throws {
        try assertInvalid(SafetensorsWriter.file(header: "{}", payload: Data(), declaredHeaderLength: 1 << 40),
                          contains: "exceeds the limit of 100000000 bytes")
    }

    func testInvalidHeaderJSON() throws {
        try assertInvalid(SafetensorsWriter.file(header: "{\"w\": [", payload: Data()), contains: "header is not valid JSON")
    }

    func testOverlappingTensors() throws {
        let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        try assertInvalid(SafetensorsWriter.file(header: header, payload: Data(count: 12)), contains: "tensors a and b overlap")
    }

    func testByteSizeThatDisagreesWithShape() throws {
        let header = #"{"a":{"dtype":"BF16","shape":[3],"data_offsets":[0,8]}}"#
        try assertInvalid(SafetensorsWriter.file(header: header, payload: Data(count: 8)),
                          contains: "tensor a with shape [3] of BF16 needs 6 bytes but its data_offsets give 8")
    }

    func testUnknownDType() throws {
        let header = #"{"a":{"dtype":"F8_E9","shape":[1],"data_offsets":[0,1]}}"#
        try assertInvalid(SafetensorsWriter.file(header: header, payload: Data(count: 1)), contains: "unknown dtype F8_E9")
    }

    func testNegativeOffsets() throws {
        let header = #"{"a":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}}"#
        try assertInvalid(SafetensorsWriter.file(header: header, payload: Data(count: 1)), contains: "outside the 1 data bytes")
    }
}
