/// A failure to read or decode an image. `source` names where the bytes came from (a file path, "data URI",
/// "bytes", ...) so a message is actionable without the call site.
public struct ImageError: Error, Equatable, CustomStringConvertible, Sendable {
    public enum Kind: Equatable, Sendable {
        /// The bytes match no supported format.
        case unknownFormat
        /// The data ends before the image is complete.
        case truncated
        /// A checksum (PNG chunk CRC, zlib adler32) does not match.
        case checksumMismatch
        /// Structurally invalid data (bad Huffman code, bad header field, bad marker, ...).
        case corrupt
        /// A valid file using a feature this decoder does not implement.
        case unsupported
        /// Header dimensions that are zero or beyond what any format allows.
        case invalidDimensions
        /// More pixels than `ImageLimits.maxPixels`; checked from the header before allocating.
        case tooManyPixels
        /// The source could not be read (missing file, bad data URI, ...).
        case unreadable
    }

    public var source: String
    public var kind: Kind
    public var detail: String

    public init(source: String, kind: Kind, detail: String) {
        self.source = source
        self.kind = kind
        self.detail = detail
    }

    public var description: String { "\(source): \(detail)" }
}

/// A decoder-internal error before the source name is known; `ImageDecoder` attaches the source.
struct DecodeFailure: Error {
    var kind: ImageError.Kind
    var detail: String

    init(_ kind: ImageError.Kind, _ detail: String) {
        self.kind = kind
        self.detail = detail
    }
}

/// Limits applied to every decode, so hostile headers cannot force huge allocations.
public struct ImageLimits: Sendable, Equatable {
    /// Largest width * height accepted (default 100 megapixels).
    public var maxPixels: Int
    /// Largest single dimension accepted (PNG and JPEG cap out far below Int limits anyway).
    public var maxDimension: Int

    public init(maxPixels: Int = 100_000_000, maxDimension: Int = 1 << 24) {
        self.maxPixels = maxPixels
        self.maxDimension = maxDimension
    }

    func check(width: Int, height: Int) throws {
        guard width > 0, height > 0 else {
            throw DecodeFailure(.invalidDimensions, "invalid image size \(width)x\(height)")
        }
        guard width <= maxDimension, height <= maxDimension else {
            throw DecodeFailure(.invalidDimensions,
                                "image size \(width)x\(height) exceeds the \(maxDimension) pixel dimension limit")
        }
        guard width * height <= maxPixels else {
            throw DecodeFailure(.tooManyPixels,
                                "image size \(width)x\(height) exceeds the limit of \(maxPixels) pixels")
        }
    }
}
