/// How transparency is turned into RGB. transformers converts differently depending on how the image arrives:
/// a PIL image handed to the processor goes through `convert_to_rgb`, which alpha-composites onto white when the
/// image has an alpha band or `info["transparency"]`; a path, URL or base64 string goes through `load_image`,
/// which calls `Image.convert("RGB")` first and so simply drops alpha.
public enum TransparencyHandling: Sendable, Equatable {
    case compositeOnWhite
    case discard
}

extension DecodedImage {
    /// Whether Pillow sees transparency: an alpha band or a tRNS entry (`info["transparency"]`).
    public var hasTransparency: Bool {
        switch layout {
        case .grayAlpha, .rgba: return true
        default: return transparency != nil
        }
    }

    /// The RGB image transformers would get from this decoded image (before any EXIF transpose).
    public func rgb(transparency handling: TransparencyHandling = .compositeOnWhite) -> RGBImage {
        let count = width * height
        var out = [UInt8](repeating: 0, count: count * 3)
        let composite = handling == .compositeOnWhite && hasTransparency
        samples.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBufferPointer { o in
                for i in 0..<count {
                    let (r, g, b, a) = rgba(s, i)
                    if composite {
                        o[3 * i] = Self.overWhite(r, a)
                        o[3 * i + 1] = Self.overWhite(g, a)
                        o[3 * i + 2] = Self.overWhite(b, a)
                    } else {
                        o[3 * i] = r
                        o[3 * i + 1] = g
                        o[3 * i + 2] = b
                    }
                }
            }
        }
        return RGBImage(width: width, height: height, pixels: out)
    }

    /// Pixel `i` as Pillow's `convert("RGBA")` would give it.
    @inline(__always)
    private func rgba(_ s: UnsafeBufferPointer<UInt8>, _ i: Int) -> (UInt8, UInt8, UInt8, UInt8) {
        switch layout {
        case .gray:
            let v = s[i]
            return (v, v, v, transparency.map { $0[0] == v ? 0 : 255 } ?? 255)
        case .grayAlpha:
            return (s[2 * i], s[2 * i], s[2 * i], s[2 * i + 1])
        case .rgb:
            let r = s[3 * i], g = s[3 * i + 1], b = s[3 * i + 2]
            let keyed = transparency.map { $0[0] == r && $0[1] == g && $0[2] == b } ?? false
            return (r, g, b, keyed ? 0 : 255)
        case .rgba:
            return (s[4 * i], s[4 * i + 1], s[4 * i + 2], s[4 * i + 3])
        case .cmyk:
            // Pillow's cmyk2rgb: channel = 255 - k - c * (255 - k) / 255, the division rounded by shifts.
            let nk = 255 - Int(s[4 * i + 3])
            func channel(_ c: UInt8) -> UInt8 {
                let t = Int(c) * nk + 128
                return UInt8(clamping: nk - ((t >> 8) + t) >> 8)
            }
            return (channel(s[4 * i]), channel(s[4 * i + 1]), channel(s[4 * i + 2]), 255)
        case .indexed(let palette):
            // Indices past the palette read black, as in Pillow's zero-filled 256-entry palette.
            let index = Int(s[i])
            let base = index * 3
            let (r, g, b) = base + 2 < palette.count ? (palette[base], palette[base + 1], palette[base + 2]) : (0, 0, 0)
            let alpha = transparency.map { index < $0.count ? $0[index] : 255 } ?? 255
            return (r, g, b, alpha)
        }
    }

    /// `Image.alpha_composite(white, pixel)` channel, Pillow's scalar integer path (AlphaComposite.c) with an
    /// opaque white destination.
    @inline(__always)
    static func overWhite(_ value: UInt8, _ alpha: UInt8) -> UInt8 {
        if alpha == 0 { return 255 }
        let precisionBits: UInt32 = 7
        let srcA = UInt32(alpha), dstA: UInt32 = 255, dst: UInt32 = 255
        let blend = dstA * (255 - srcA)
        let outA255 = srcA * 255 + blend
        let coef1 = srcA * 255 * 255 * (1 << precisionBits) / outA255
        let coef2 = 255 * (1 << precisionBits) - coef1
        let tmp = UInt32(value) * coef1 + dst * coef2 + (0x80 << precisionBits)
        return UInt8(truncatingIfNeeded: (((tmp >> 8) + tmp) >> 8) >> precisionBits)
    }
}
