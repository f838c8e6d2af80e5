import Foundation
import IdeficsFiles

/// Idefics2's image processor settings (`preprocessor_config.json`, or the `image_processor` section of
/// `processor_config.json`); defaults are `Idefics2ImageProcessorPil`'s. Idefics v1's `IdeficsImageProcessorPil` is
/// the same pipeline with a fixed square size (`image_size`), bicubic resampling and CLIP's mean/std, all read from
/// its file.
public struct Idefics2ImageProcessorConfig: Sendable, Equatable {
    /// Recorded for completeness: `RGBImage` inputs are always RGB already (see `ImageDecoder.loadRGB`).
    public var doConvertRGB = true
    public var doResize = true
    /// `size.shortest_edge` / `size.longest_edge`, used unless the file gives a fixed `height`/`width`.
    public var shortestEdge = 378
    public var longestEdge = 980
    public var fixedSize: ImageSize?
    /// Pillow's filter (`resample`): 2 (bilinear) in Idefics2's files, 3 (bicubic) in Idefics v1's.
    public var resample = PillowResize.Filter.bilinear
    public var doRescale = true
    public var rescaleFactor = 1.0 / 255.0
    public var doNormalize = true
    public var imageMean: [Double] = [0.5, 0.5, 0.5]
    public var imageStd: [Double] = [0.5, 0.5, 0.5]
    /// Recorded for completeness: `batch` always pads (as transformers with do_pad); `process` gives the unpadded
    /// images.
    public var doPad = true
    public var doImageSplitting = false

    public init() {}

    /// `IdeficsImageProcessorPil`'s defaults (Idefics v1): bicubic to a fixed square, OpenAI CLIP's mean and std.
    public static func ideficsV1(imageSize: Int) -> Self {
        var config = Self()
        config.fixedSize = ImageSize(height: imageSize, width: imageSize)
        config.resample = .bicubic
        config.imageMean = [0.48145466, 0.4578275, 0.40821073]
        config.imageStd = [0.26862954, 0.26130258, 0.27577711]
        config.doPad = false
        return config
    }

    /// Parses the JSON of `preprocessor_config.json` or `processor_config.json` over `defaults`; unknown keys are
    /// ignored. (Decodable rather than JSONSerialization: the latter misreads 0.00392156862745098 by one ulp.)
    public init(json: Data, source: String = "preprocessor_config.json", defaults: Self = Self()) throws {
        self = defaults
        let file: ConfigFile
        do {
            file = try JSONDecoder().decode(ConfigFile.self, from: json)
        } catch {
            throw ImageError(source: source, kind: .corrupt,
                             detail: "invalid image processor configuration: \(Self.describe(decodingError: error))")
        }
        let fields = file.imageProcessor ?? file.fields
        doConvertRGB = fields.do_convert_rgb ?? doConvertRGB
        doResize = fields.do_resize ?? doResize
        doRescale = fields.do_rescale ?? doRescale
        rescaleFactor = fields.rescale_factor ?? rescaleFactor
        doNormalize = fields.do_normalize ?? doNormalize
        imageMean = fields.image_mean?.values ?? imageMean
        imageStd = fields.image_std?.values ?? imageStd
        doPad = fields.do_pad ?? doPad
        doImageSplitting = fields.do_image_splitting ?? doImageSplitting
        if let code = fields.resample {
            guard let filter = PillowResize.Filter(pillowCode: code) else {
                throw ImageError(source: source, kind: .unsupported,
                                 detail: "resample is \(code); only 2 (BILINEAR) and 3 (BICUBIC) are supported")
            }
            resample = filter
        }
        if let size = fields.size {
            if let shortest = size.shortest_edge, let longest = size.longest_edge {
                (shortestEdge, longestEdge, fixedSize) = (shortest, longest, nil)
            } else if let height = size.height, let width = size.width {
                fixedSize = ImageSize(height: height, width: width)
            } else {
                throw ImageError(source: source, kind: .corrupt,
                                 detail: "size must contain shortest_edge and longest_edge, or height and width")
            }
        }
        // Idefics v1's processor takes `image_size` as a square size that overrides `size`.
        if let side = fields.image_size { fixedSize = ImageSize(height: side, width: side) }
        guard imageMean.count == 3, imageStd.count == 3 else {
            throw ImageError(source: source, kind: .corrupt, detail: "image_mean and image_std must have 3 values")
        }
        try validate(source: source)
    }

    /// The largest edge a configuration or an override may ask for (a 4096 px side is 85,000 patches per image).
    public static let maxEdge = 4096

    /// Values that would make NaN pixels (a zero std) or an empty or huge resize target are refused, field named.
    private func validate(source: String) throws {
        func refuse(_ field: String, _ value: Any, _ allowed: String) -> ImageError {
            ImageError(source: source, kind: .corrupt, detail: "\(field) is \(value); it must be \(allowed)")
        }
        guard rescaleFactor.isFinite, rescaleFactor > 0 else { throw refuse("rescale_factor", rescaleFactor, "a finite number > 0") }
        guard imageMean.allSatisfy(\.isFinite) else { throw refuse("image_mean", imageMean, "finite") }
        guard imageStd.allSatisfy({ $0.isFinite && $0 > 0 }) else { throw refuse("image_std", imageStd, "finite and > 0") }
        let edges = [("size.shortest_edge", shortestEdge), ("size.longest_edge", longestEdge)]
            + (fixedSize.map { [("size.height", $0.height), ("size.width", $0.width)] } ?? [])
        for (field, edge) in edges where !(1...Self.maxEdge).contains(edge) {
            throw refuse(field, edge, "in 1...\(Self.maxEdge)")
        }
    }

    /// A JSON decoding failure as the field path and the problem, without Foundation's internal wording.
    static func describe(decodingError error: Error) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }
            return keys.isEmpty ? "the file" : "field " + keys.joined(separator: ".")
        }
        switch error as? DecodingError {
        case let .typeMismatch(type, context)?: return "\(path(context)) is not \(type == Double.self ? "a number" : "of type \(type)")"
        case let .valueNotFound(_, context)?: return "\(path(context)) is null"
        case let .keyNotFound(key, _)?: return "field \(key.stringValue) is missing"
        case let .dataCorrupted(context)?: return context.codingPath.isEmpty ? "not valid JSON" : "\(path(context)) is invalid"
        default: return "not valid JSON"
        }
    }

    public init(contentsOf url: URL, defaults: Self = Self()) throws {
        let data: Data
        do {
            data = try InputFile.data(at: url.path)
        } catch let error as InputFileError {
            throw ImageError(source: url.path, kind: .unreadable, detail: error.reason)
        }
        try self.init(json: data, source: url.path, defaults: defaults)
    }

}

public struct ImageSize: Sendable, Equatable {
    public var height: Int
    public var width: Int

    public init(height: Int, width: Int) {
        self.height = height
        self.width = width
    }
}

/// The JSON fields, named as in the file; `processor_config.json` nests them under "image_processor".
private struct ConfigFile: Decodable {
    struct Size: Decodable {
        var shortest_edge: Int?, longest_edge: Int?, height: Int?, width: Int?
    }

    /// `image_mean` / `image_std`: a list, or one number for all channels.
    struct Channels: Decodable {
        var values: [Double]

        init(from decoder: Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let single = try? container.decode(Double.self) {
                values = [single, single, single]
            } else {
                values = try container.decode([Double].self)
            }
        }
    }

    struct Fields: Decodable {
        var do_convert_rgb: Bool?, do_resize: Bool?, do_rescale: Bool?, do_normalize: Bool?, do_pad: Bool?
        var do_image_splitting: Bool?
        var rescale_factor: Double?
        var image_mean: Channels?, image_std: Channels?
        var resample: Int?
        var size: Size?
        var image_size: Int?
    }

    var fields: Fields
    var imageProcessor: Fields?

    private enum Keys: String, CodingKey { case image_processor }

    init(from decoder: Decoder) throws {
        fields = try Fields(from: decoder)
        imageProcessor = try decoder.container(keyedBy: Keys.self).decodeIfPresent(Fields.self, forKey: .image_processor)
    }
}

/// Per-call overrides, as the processor's `__call__` kwargs.
public struct Idefics2ImageProcessorOverrides: Sendable, Hashable {
    public var doImageSplitting: Bool?
    public var longestEdge: Int?
    public var shortestEdge: Int?

    public init(doImageSplitting: Bool? = nil, longestEdge: Int? = nil, shortestEdge: Int? = nil) {
        self.doImageSplitting = doImageSplitting
        self.longestEdge = longestEdge
        self.shortestEdge = shortestEdge
    }
}

/// One processed image at its own size: float32 `[3, height, width]` (C order), what the vision encoder consumes.
public struct ProcessedImage: Sendable, Equatable {
    public var height: Int
    public var width: Int
    public var values: [Float]
}

/// The padded batch transformers returns: `pixelValues` `[batch, maxImages, 3, height, width]`,
/// `pixelAttentionMask` `[batch, maxImages, height, width]` (1 on real pixels; transformers' dtype is int64).
/// Samples with fewer images are padded with all-zero images whose mask is all zero.
public struct ProcessedBatch: Sendable, Equatable {
    public var batchSize: Int
    public var maxImages: Int
    public var height: Int
    public var width: Int
    public var pixelValues: [Float]
    public var pixelAttentionMask: [UInt8]
    /// The unpadded images of each sample, in order (the valid top-left rectangle of each padded slot).
    public var images: [[ProcessedImage]]
}

public struct Idefics2ImageProcessor: Sendable {
    public var config: Idefics2ImageProcessorConfig

    public init(config: Idefics2ImageProcessorConfig = Idefics2ImageProcessorConfig()) {
        self.config = config
    }

    /// `get_resize_output_image_size`: Python floats and `int()` truncation; the short side is then raised to
    /// `shortest_edge` independently, so the aspect ratio may change.
    public static func resizedSize(height: Int, width: Int, shortestEdge: Int, longestEdge: Int) -> ImageSize {
        var h = height, w = width
        let aspect = Double(width) / Double(height)
        if w >= h && w > longestEdge {
            w = longestEdge
            h = Int(Double(w) / aspect)
        } else if h > w && h > longestEdge {
            h = longestEdge
            w = Int(Double(h) * aspect)
        }
        return ImageSize(height: max(h, shortestEdge), width: max(w, shortestEdge))
    }

    /// The images one input becomes: with splitting, the four quadrants (split at `h // 2`, `w // 2`, on the
    /// original) then the whole image; each resized on its own.
    public func process(_ image: RGBImage, overrides: Idefics2ImageProcessorOverrides = .init()) throws
        -> [ProcessedImage] {
        for (name, edge) in [("longest edge", overrides.longestEdge), ("shortest edge", overrides.shortestEdge)] {
            if let edge, !(1...Idefics2ImageProcessorConfig.maxEdge).contains(edge) {
                throw ImageError(source: "image processor", kind: .invalidDimensions,
                                 detail: "a \(name) of \(edge) pixels is outside 1...\(Idefics2ImageProcessorConfig.maxEdge)")
            }
        }
        let split = overrides.doImageSplitting ?? config.doImageSplitting
        var parts = [image]
        if split {
            let midH = image.height / 2, midW = image.width / 2
            guard midH > 0 && midW > 0 else {
                throw ImageError(source: "image processor", kind: .invalidDimensions,
                                 detail: "a \(image.width)x\(image.height) image is too small to split")
            }
            parts = [image.cropped(x: 0, y: 0, width: midW, height: midH),
                     image.cropped(x: midW, y: 0, width: image.width - midW, height: midH),
                     image.cropped(x: 0, y: midH, width: midW, height: image.height - midH),
                     image.cropped(x: midW, y: midH, width: image.width - midW, height: image.height - midH),
                     image]
        }
        let tables = channelTables()
        return parts.map { part in
            var resized = part
            if config.doResize {
                let size = config.fixedSize ?? Self.resizedSize(
                    height: part.height, width: part.width,
                    shortestEdge: overrides.shortestEdge ?? config.shortestEdge,
                    longestEdge: overrides.longestEdge ?? config.longestEdge)
                resized = PillowResize.resize(part, width: size.width, height: size.height, filter: config.resample)
            }
            return toFloat(resized, tables)
        }
    }

    /// Processes a batch (a list of images per sample) and pads it as transformers does.
    public func batch(_ samples: [[RGBImage]], overrides: Idefics2ImageProcessorOverrides = .init()) throws
        -> ProcessedBatch {
        let images = try samples.map { try $0.flatMap { try process($0, overrides: overrides) } }
        let all = images.joined()
        let height = all.map(\.height).max() ?? 0, width = all.map(\.width).max() ?? 0
        let maxImages = images.map(\.count).max() ?? 0
        let plane = height * width
        var values = [Float](repeating: 0, count: samples.count * maxImages * 3 * plane)
        var mask = [UInt8](repeating: 0, count: samples.count * maxImages * plane)
        values.withUnsafeMutableBufferPointer { dst in
            mask.withUnsafeMutableBufferPointer { maskOut in
                for (b, sampleImages) in images.enumerated() {
                    for (i, image) in sampleImages.enumerated() {
                        let slot = b * maxImages + i
                        image.values.withUnsafeBufferPointer { src in
                            for c in 0..<3 {
                                for y in 0..<image.height {
                                    (dst.baseAddress! + ((slot * 3 + c) * height + y) * width)
                                        .update(from: src.baseAddress! + (c * image.height + y) * image.width,
                                                count: image.width)
                                }
                            }
                        }
                        for y in 0..<image.height {
                            (maskOut.baseAddress! + slot * plane + y * width).update(repeating: 1, count: image.width)
                        }
                    }
                }
            }
        }
        return ProcessedBatch(batchSize: samples.count, maxImages: maxImages, height: height, width: width,
                              pixelValues: values, pixelAttentionMask: mask, images: images)
    }

    /// Per channel, the float32 value of each uint8 level: `rescale` multiplies in float64 and casts to float32,
    /// `normalize` subtracts and divides in float32 (numpy's promotion with float32 mean/std arrays).
    private func channelTables() -> [[Float]] {
        (0..<3).map { c in
            (0..<256).map { level in
                var x = config.doRescale ? Float(Double(level) * config.rescaleFactor) : Float(level)
                if config.doNormalize { x = (x - Float(config.imageMean[c])) / Float(config.imageStd[c]) }
                return x
            }
        }
    }

    private func toFloat(_ image: RGBImage, _ tables: [[Float]]) -> ProcessedImage {
        let plane = image.width * image.height
        var values = [Float](repeating: 0, count: 3 * plane)
        image.pixels.withUnsafeBufferPointer { src in
            values.withUnsafeMutableBufferPointer { dst in
                for c in 0..<3 {
                    tables[c].withUnsafeBufferPointer { table in
                        for i in 0..<plane { dst[c * plane + i] = table[Int(src[3 * i + c])] }
                    }
                }
            }
        }
        return ProcessedImage(height: image.height, width: image.width, values: values)
    }
}
