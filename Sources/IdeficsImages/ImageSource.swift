import Foundation
import IdeficsFiles

/// Where image bytes come from. http(s) URLs are not fetched here; the caller downloads and passes `.bytes`.
public enum ImageSource: Sendable, Equatable {
    case file(String)
    /// A `data:image/...;base64,...` URI (what TGI clients send inline).
    case dataURI(String)
    /// Raw encoded bytes; `name` is only used in error messages.
    case bytes([UInt8], name: String = "image bytes")

    public var name: String {
        switch self {
        case .file(let path): return path
        case .dataURI: return "data URI"
        case .bytes(_, let name): return name
        }
    }

    func read() throws -> [UInt8] {
        switch self {
        case .file(let path):
            do {
                return [UInt8](try InputFile.data(at: path))
            } catch let error as InputFileError {
                throw ImageError(source: path, kind: .unreadable, detail: error.reason)
            }
        case .dataURI(let uri):
            guard uri.hasPrefix("data:"), let comma = uri.firstIndex(of: ",") else {
                throw ImageError(source: name, kind: .unreadable, detail: "not a data URI")
            }
            guard uri[..<comma].hasSuffix(";base64") else {
                throw ImageError(source: name, kind: .unreadable, detail: "data URI is not base64-encoded")
            }
            guard let data = Data(base64Encoded: String(uri[uri.index(after: comma)...]),
                                  options: .ignoreUnknownCharacters) else {
                throw ImageError(source: name, kind: .unreadable, detail: "invalid base64 in data URI")
            }
            return [UInt8](data)
        case .bytes(let bytes, _):
            return bytes
        }
    }
}

/// Options for turning a source into the RGB image the Idefics2 processor sees.
public struct ImageLoadOptions: Sendable, Equatable {
    public var limits: ImageLimits
    /// `load_image` applies `ImageOps.exif_transpose`; a PIL image handed straight to the processor is not rotated.
    public var applyEXIFOrientation: Bool
    public var transparency: TransparencyHandling

    public init(limits: ImageLimits = ImageLimits(), applyEXIFOrientation: Bool = true,
                transparency: TransparencyHandling = .compositeOnWhite) {
        self.limits = limits
        self.applyEXIFOrientation = applyEXIFOrientation
        self.transparency = transparency
    }
}

public enum ImageDecoder {
    /// Decodes PNG, JPEG, PPM/PGM (P5/P6) or BMP, recognised by their magic bytes.
    public static func decode(_ bytes: [UInt8], source: String = "image bytes",
                              limits: ImageLimits = ImageLimits()) throws -> DecodedImage {
        do {
            if bytes.starts(with: PNGDecoder.signature) { return try PNGDecoder.decode(bytes, limits: limits) }
            if bytes.starts(with: [0xFF, 0xD8, 0xFF]) { return try JPEGDecoder.decode(bytes, limits: limits) }
            if bytes.starts(with: [0x50, 0x35]) || bytes.starts(with: [0x50, 0x36]) {
                return try PNMDecoder.decode(bytes, limits: limits)
            }
            if bytes.starts(with: [0x42, 0x4D]) { return try BMPDecoder.decode(bytes, limits: limits) }
            throw DecodeFailure(.unknownFormat, bytes.isEmpty ? "empty image data"
                                : "unknown image format (supported: PNG, JPEG, PPM/PGM, BMP)")
        } catch let failure as DecodeFailure {
            throw ImageError(source: source, kind: failure.kind, detail: failure.detail)
        }
    }

    public static func decode(_ source: ImageSource, limits: ImageLimits = ImageLimits()) throws -> DecodedImage {
        try decode(source.read(), source: source.name, limits: limits)
    }

    /// Reads, decodes and converts to RGB (then applies EXIF orientation if asked).
    public static func loadRGB(_ source: ImageSource, options: ImageLoadOptions = ImageLoadOptions()) throws
        -> RGBImage {
        let decoded = try decode(source, limits: options.limits)
        let rgb = decoded.rgb(transparency: options.transparency)
        return options.applyEXIFOrientation ? rgb.applyingOrientation(decoded.orientation) : rgb
    }
}
