/// A decoded image as Pillow holds it right after `Image.open`: 8-bit samples in the file's own color model,
/// plus the transparency information Pillow keeps in `info["transparency"]`. Converting to RGB is a separate
/// step (`RGBConversion.swift`) because transformers' two loading paths convert differently.
public struct DecodedImage: Sendable, Equatable {
    public enum Layout: Sendable, Equatable {
        case gray, grayAlpha, rgb, rgba
        /// Adobe-style CMYK as Pillow's "CMYK" mode holds it (0 = no ink).
        case cmyk
        /// One palette index per sample; `palette` holds RGB triples.
        case indexed(palette: [UInt8])

        public var channels: Int {
            switch self {
            case .gray, .indexed: return 1
            case .grayAlpha: return 2
            case .rgb: return 3
            case .rgba, .cmyk: return 4
            }
        }
    }

    public var width: Int
    public var height: Int
    public var layout: Layout
    /// Row-major interleaved samples, `width * height * layout.channels` bytes.
    public var samples: [UInt8]
    /// PNG tRNS: for gray/RGB the key color, each channel already reduced the way Pillow compares it
    /// (`value & 0xFF`, against 8-bit samples); for indexed images the alpha of the first palette entries.
    /// nil when the file has no tRNS chunk (Pillow's `info["transparency"]` unset).
    public var transparency: [UInt8]?
    /// EXIF orientation tag (1...8), 1 when absent.
    public var orientation: Int

    public init(width: Int, height: Int, layout: Layout, samples: [UInt8], transparency: [UInt8]? = nil,
                orientation: Int = 1) {
        precondition(samples.count == width * height * layout.channels, "sample count does not match the size")
        self.width = width
        self.height = height
        self.layout = layout
        self.samples = samples
        self.transparency = transparency
        self.orientation = orientation
    }
}
