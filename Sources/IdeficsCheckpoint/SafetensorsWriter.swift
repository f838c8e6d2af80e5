import Foundation
import IdeficsFiles
import IdeficsTensors

/// Builds a `.safetensors` file the way the safetensors library writes one: tensors ordered by descending
/// element size then name (so every tensor stays aligned), laid out back to back, and the JSON header padded
/// with spaces so the data starts on an 8-byte boundary.
public struct SafetensorsWriter: Sendable {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case duplicateTensor(name: String)
        case byteCountMismatch(name: String, shape: [Int], dtype: DType, bytes: Int)

        public var description: String {
            switch self {
            case .duplicateTensor(let name): "tensor \(name) is added twice"
            case .byteCountMismatch(let name, let shape, let dtype, let bytes):
                "tensor \(name) with shape \(shape) of \(dtype.rawValue) cannot hold \(bytes) bytes"
            }
        }
    }

    private struct Tensor: Sendable {
        var name: String
        var dtype: DType
        var shape: [Int]
        var bytes: Data
    }

    private var tensors: [Tensor] = []
    /// Written as the header's `__metadata__` object when not empty.
    public var metadata: [String: String]

    public init(metadata: [String: String] = [:]) {
        self.metadata = metadata
    }

    /// Adds a tensor from its raw little-endian bytes.
    public mutating func add(_ name: String, dtype: DType, shape: [Int], bytes: Data) throws {
        guard !tensors.contains(where: { $0.name == name }) else { throw Failure.duplicateTensor(name: name) }
        let (count, overflow) = shape.reduce((dtype.byteSize, false)) { partial, dim in
            let (product, overflow) = partial.0.multipliedReportingOverflow(by: dim)
            return (product, partial.1 || overflow || dim < 0)
        }
        guard !overflow, count == bytes.count else {
            throw Failure.byteCountMismatch(name: name, shape: shape, dtype: dtype, bytes: bytes.count)
        }
        tensors.append(Tensor(name: name, dtype: dtype, shape: shape, bytes: bytes))
    }

    /// Float32 values in host byte order, which is little-endian on every platform this package builds for.
    public mutating func add(_ name: String, shape: [Int], floats: [Float]) throws {
        try add(name, dtype: .f32, shape: shape, bytes: floats.withUnsafeBufferPointer { Data(buffer: $0) })
    }

    public mutating func add(_ name: String, shape: [Int], uint8s: [UInt8]) throws {
        try add(name, dtype: .u8, shape: shape, bytes: Data(uint8s))
    }

    /// The whole file.
    public func data() throws -> Data {
        let ordered = Self.ordered(tensors.map { ($0.name, $0.dtype, $0.shape, $0.bytes.count) })
        var file = try Self.header(ordered, metadata: metadata)
        let bytes = Dictionary(uniqueKeysWithValues: tensors.map { ($0.name, $0.bytes) })
        for tensor in ordered { file.append(bytes[tensor.name]!) }
        return file
    }

    /// Writes the file as `OutputFile` does: never over anything but a regular file, whole or not at all.
    public func write(to path: String) throws {
        try OutputFile.write(data(), to: path)
    }

    /// A tensor whose bytes stay where they are (a mapped file, a quantized copy) until they are written, or are
    /// made just before (a conversion: one tensor's copy in memory at a time).
    public struct Streamed {
        public let name: String
        public let dtype: DType
        public let shape: [Int]
        public let byteCount: Int
        private let bytes: () -> (UnsafeRawBufferPointer, owner: Any?)

        public init(name: String, dtype: DType, shape: [Int], bytes: UnsafeRawBufferPointer) {
            precondition(shape.reduce(dtype.byteSize, *) == bytes.count, "\(name): \(bytes.count) bytes for \(shape)")
            (self.name, self.dtype, self.shape, byteCount) = (name, dtype, shape, bytes.count)
            self.bytes = { (bytes, nil) }
        }

        /// `make()`'s tensor, of `dtype` and `shape`, made when it is written and released after.
        public init(name: String, dtype: DType, shape: [Int], making make: @escaping () -> WeightTensor) {
            (self.name, self.dtype, self.shape, byteCount) = (name, dtype, shape, shape.reduce(dtype.byteSize, *))
            bytes = {
                let tensor = make()
                precondition(tensor.dtype == dtype && tensor.shape == shape, "\(name): made \(tensor.dtype) \(tensor.shape)")
                return (UnsafeRawBufferPointer(start: tensor.data, count: tensor.byteCount), tensor)
            }
        }

        /// `body` on the tensor's bytes (made first, if they are made).
        func withBytes<T>(_ body: (UnsafeRawBufferPointer) -> T) -> T {
            let (bytes, owner) = bytes()
            return withExtendedLifetime(owner) { body(bytes) }
        }
    }

    /// Writes a file of `tensors` straight from their memory (no copy of the whole file is made), laid out as
    /// `data()` lays it out; `progress(bytesWritten, totalBytes)` is called after each tensor.
    public static func write(_ tensors: [Streamed], metadata: [String: String] = [:], to path: String,
                             progress: (Int, Int) -> Void = { _, _ in }) throws {
        guard Set(tensors.map(\.name)).count == tensors.count else {
            throw Failure.duplicateTensor(name: Dictionary(grouping: tensors, by: \.name).first { $0.value.count > 1 }!.key)
        }
        let byName = Dictionary(uniqueKeysWithValues: tensors.map { ($0.name, $0) })
        let ordered = Self.ordered(tensors.map { ($0.name, $0.dtype, $0.shape, $0.byteCount) })
        let header = try Self.header(ordered, metadata: metadata)
        let total = tensors.reduce(0) { $0 + $1.byteCount }
        var written = 0
        try OutputFile.write(to: path) { descriptor in
            guard header.withUnsafeBytes({ OutputFile.writeAll(descriptor, $0) }) else { return false }
            for entry in ordered {
                guard byName[entry.name]!.withBytes({ OutputFile.writeAll(descriptor, $0) }) else { return false }
                written += entry.count
                progress(written, total)
            }
            return true
        }
    }

    private typealias Entry = (name: String, dtype: DType, shape: [Int], count: Int)

    /// The safetensors library's order: descending element size, then name (so every tensor stays aligned).
    private static func ordered(_ entries: [Entry]) -> [Entry] {
        entries.sorted { ($0.dtype.byteSize, $1.name) > ($1.dtype.byteSize, $0.name) }
    }

    /// The 8-byte length and the JSON header of tensors laid out back to back in `ordered`'s order, padded with
    /// spaces so that the data starts on an 8-byte boundary.
    private static func header(_ ordered: [Entry], metadata: [String: String]) throws -> Data {
        var header: [String: Any] = metadata.isEmpty ? [:] : ["__metadata__": metadata]
        var offset = 0
        for tensor in ordered {
            header[tensor.name] = ["dtype": tensor.dtype.rawValue, "shape": tensor.shape,
                                   "data_offsets": [offset, offset + tensor.count]] as [String: Any]
            offset += tensor.count
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys, .withoutEscapingSlashes])
        json.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - json.count % 8) % 8))
        var file = Data(capacity: 8 + json.count)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(json)
        return file
    }
}
