import Foundation
import IdeficsFiles
import IdeficsTensors

/// One `.safetensors` file, memory-mapped: an 8-byte little-endian header length, a JSON header that maps tensor
/// names to dtype, shape and byte offsets, then the tensor bytes. Everything is validated before any use.
public struct SafetensorsFile: Sendable {
    public struct Entry: Sendable {
        public let dtype: DType
        public let shape: [Int]
        public let byteRange: Range<Int>
    }

    /// The safetensors library's own limit on the header size.
    public static let maximumHeaderSize = 100_000_000

    public let file: MappedFile
    public let entries: [String: Entry]
    public let metadata: [String: String]
    private let dataStart: Int

    public var path: String { file.path }

    public init(path: String) throws {
        try self.init(file: MappedFile(path: path))
    }

    public init(file: MappedFile) throws {
        self.file = file
        let path = file.path
        func invalid(_ reason: String) -> CheckpointError { .invalidSafetensors(path: path, reason: reason) }
        guard file.count >= 8 else { throw invalid("file is \(file.count) bytes, shorter than the 8-byte header length") }
        let headerSize = UInt64(littleEndian: file.bytes.loadUnaligned(as: UInt64.self))
        guard headerSize <= UInt64(Self.maximumHeaderSize) else {
            throw invalid("header length \(headerSize) exceeds the limit of \(Self.maximumHeaderSize) bytes")
        }
        guard 8 + Int(headerSize) <= file.count else {
            throw invalid("header length \(headerSize) runs past the end of the file (\(file.count) bytes): truncated?")
        }
        let headerData = Data(bytes: file.bytes + 8, count: Int(headerSize))
        let json: Any
        do {
            json = try InputFile.json(headerData)
        } catch let error as JSONError {
            throw invalid("header is not valid JSON: \(error.reason)")
        }
        guard let header = json as? [String: Any] else { throw invalid("header is not a JSON object") }
        dataStart = 8 + Int(headerSize)
        let dataSize = file.count - dataStart
        var entries = [String: Entry]()
        var metadata = [String: String]()
        for (name, value) in header {
            if name == "__metadata__" {
                metadata = (value as? [String: String]) ?? [:]
                continue
            }
            entries[name] = try Self.parseEntry(name: name, value, dataSize: dataSize, invalid: invalid)
        }
        // Ties put empty tensors first: one at another tensor's start offset does not overlap it.
        let ordered = entries.sorted {
            ($0.value.byteRange.lowerBound, $0.value.byteRange.upperBound)
                < ($1.value.byteRange.lowerBound, $1.value.byteRange.upperBound)
        }
        for (previous, next) in zip(ordered, ordered.dropFirst())
        where next.value.byteRange.lowerBound < previous.value.byteRange.upperBound {
            throw invalid("tensors \(previous.key) and \(next.key) overlap")
        }
        self.entries = entries
        self.metadata = metadata
    }

    private static func parseEntry(name: String, _ value: Any, dataSize: Int,
                                   invalid: (String) -> CheckpointError) throws -> Entry {
        guard let fields = value as? [String: Any] else { throw invalid("entry \(name) is not an object") }
        guard let dtypeName = fields["dtype"] as? String else { throw invalid("tensor \(name) has no dtype") }
        guard let dtype = DType(rawValue: dtypeName) else { throw invalid("tensor \(name) has unknown dtype \(dtypeName)") }
        guard let shape = fields["shape"] as? [Int], shape.allSatisfy({ $0 >= 0 }) else {
            throw invalid("tensor \(name) has no valid shape")
        }
        guard let offsets = fields["data_offsets"] as? [Int], offsets.count == 2 else {
            throw invalid("tensor \(name) has no valid data_offsets")
        }
        let (begin, end) = (offsets[0], offsets[1])
        guard begin >= 0, begin <= end, end <= dataSize else {
            throw invalid("tensor \(name) has data_offsets [\(begin), \(end)] outside the \(dataSize) data bytes")
        }
        var byteCount = dtype.byteSize
        for dim in shape {
            let (product, overflow) = byteCount.multipliedReportingOverflow(by: dim)
            guard !overflow else { throw invalid("tensor \(name) has an impossible shape \(shape)") }
            byteCount = product
        }
        guard byteCount == end - begin else {
            throw invalid("tensor \(name) with shape \(shape) of \(dtypeName) needs \(byteCount) bytes but its "
                          + "data_offsets give \(end - begin)")
        }
        return Entry(dtype: dtype, shape: shape, byteRange: begin..<end)
    }

    /// A view of one tensor's bytes inside the mapping (no copy).
    public func tensor(_ name: String) -> WeightTensor? {
        guard let entry = entries[name] else { return nil }
        return WeightTensor(name: name, dtype: entry.dtype, shape: entry.shape,
                            data: file.bytes + dataStart + entry.byteRange.lowerBound, owner: file)
    }
}
