import Foundation
import XCTest

/// Writes safetensors files byte by byte, including deliberately broken ones.
struct SafetensorsWriter {
    struct Tensor {
        var name: String
        var dtype = "F32"
        var shape: [Int]
        var values: [Float]
    }

    static func headerJSON(_ tensors: [Tensor]) -> (String, Data) {
        var offset = 0
        var entries = [String]()
        var payload = Data()
        for tensor in tensors {
            var bytes = Data()
            for value in tensor.values {
                if tensor.dtype == "BF16" {
                    withUnsafeBytes(of: UInt16(value.bitPattern >> 16).littleEndian) { bytes.append(contentsOf: $0) }
                } else {
                    withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
                }
            }
            entries.append("\"\(tensor.name)\":{\"dtype\":\"\(tensor.dtype)\",\"shape\":\(tensor.shape),\"data_offsets\":[\(offset),\(offset + bytes.count)]}")
            offset += bytes.count
            payload.append(bytes)
        }
        return ("{" + entries.joined(separator: ",") + "}", payload)
    }

    static func file(header: String, payload: Data, declaredHeaderLength: UInt64? = nil) -> Data {
        var data = Data()
        let headerBytes = Data(header.utf8)
        withUnsafeBytes(of: (declaredHeaderLength ?? UInt64(headerBytes.count)).littleEndian) { data.append(contentsOf: $0) }
        data.append(headerBytes)
        data.append(payload)
        return data
    }

    static func file(_ tensors: [Tensor]) -> Data {
        let (header, payload) = headerJSON(tensors)
        return file(header: header, payload: payload)
    }
}
