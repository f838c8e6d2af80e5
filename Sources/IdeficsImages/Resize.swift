/// Pillow's `Image.resize(size, Image.BILINEAR or Image.BICUBIC)` on 8-bit RGB, bit for bit (libImaging/Resample.c):
/// a separable filter whose support widens by the scale factor when shrinking (antialiasing), coefficients computed
/// in double, normalised per output pixel, then rounded to 22-bit fixed point; each pass rounds by adding 2^21 and
/// clipping to 0...255, so the pass order changes results. Pillow 13 runs the horizontal pass first (over just the
/// source rows the vertical pass reads) unless the height shrinks by more than twice as many pixels as the width
/// (`ImagingResampleInner`). A dimension that keeps its size skips its pass; an unchanged size is a plain copy.
public enum PillowResize {
    static let precisionBits = 22

    /// Pillow's filters (`Image.Resampling`): support radius and kernel.
    public enum Filter: Sendable, Equatable {
        /// Triangle, support 1 (`resample=2`).
        case bilinear
        /// Keys cubic with a = -0.5, support 2 (`resample=3`); negative lobes, so results are clipped to 0...255.
        case bicubic

        /// Pillow's `resample` number, for reading preprocessor configs.
        public init?(pillowCode: Int) {
            switch pillowCode {
            case 2: self = .bilinear
            case 3: self = .bicubic
            default: return nil
            }
        }

        var support: Double { self == .bilinear ? 1 : 2 }

        func weight(_ x: Double) -> Double {
            let x = abs(x)
            switch self {
            case .bilinear: return x < 1 ? 1 - x : 0
            case .bicubic:
                let a = -0.5
                if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
                if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
                return 0
            }
        }
    }

    /// Filter taps for one axis: output `i` reads `count[i]` inputs starting at `start[i]`, weighted by
    /// `weights[i * taps ..< i * taps + count[i]]`.
    struct Coefficients {
        var start: [Int]
        var count: [Int]
        var weights: [Int32]
        var taps: Int
    }

    /// `precompute_coeffs` + `normalize_coeffs_8bpc` for `filter` over the whole input (box 0...inSize).
    static func coefficients(inSize: Int, outSize: Int, filter: Filter) -> Coefficients {
        // Pillow passes the box as C floats; (in1 - in0) is exact for any realistic size.
        let scale = Double(Float(inSize) - Float(0)) / Double(outSize)
        let filterScale = max(scale, 1.0)
        let support = filter.support * filterScale
        let taps = Int(support.rounded(.up)) * 2 + 1
        var start = [Int](repeating: 0, count: outSize), count = [Int](repeating: 0, count: outSize)
        var weights = [Int32](repeating: 0, count: outSize * taps)
        var raw = [Double](repeating: 0, count: taps)
        let inverse = 1.0 / filterScale
        for i in 0..<outSize {
            let center = 0.0 + (Double(i) + 0.5) * scale
            // C casts truncate toward zero, which Int(_: Double) matches.
            let xmin = max(0, Int(center - support + 0.5))
            let xmax = min(inSize, Int(center + support + 0.5)) - xmin
            var sum = 0.0
            for x in 0..<xmax {
                let w = filter.weight((Double(x + xmin) - center + 0.5) * inverse)
                raw[x] = w
                sum += w
            }
            for x in 0..<xmax {
                let w = sum != 0 ? raw[x] / sum : raw[x]
                let fixed = w * Double(1 << precisionBits)
                weights[i * taps + x] = Int32(w < 0 ? -0.5 + fixed : 0.5 + fixed)
            }
            start[i] = xmin
            count[i] = xmax
        }
        return Coefficients(start: start, count: count, weights: weights, taps: taps)
    }

    /// `clip8`: drop the fraction bits (arithmetic shift) and saturate.
    @inline(__always)
    private static func clip8(_ sum: Int32) -> UInt8 {
        UInt8(clamping: sum >> Int32(precisionBits))
    }

    public static func bilinear(_ image: RGBImage, width: Int, height: Int) -> RGBImage {
        resize(image, width: width, height: height, filter: .bilinear)
    }

    public static func resize(_ image: RGBImage, width: Int, height: Int, filter: Filter) -> RGBImage {
        precondition(width > 0 && height > 0, "resize to an empty size")
        let needHorizontal = width != image.width, needVertical = height != image.height
        guard needHorizontal || needVertical else { return image }
        let shrinkY = image.height - height, shrinkX = image.width - width
        let horizontalFirst = !(shrinkY > 0 && shrinkY > shrinkX * 2)
        let vertical = coefficients(inSize: image.height, outSize: height, filter: filter)
        let horizontal = coefficients(inSize: image.width, outSize: width, filter: filter)
        if !horizontalFirst {
            let rows = needVertical ? verticalPass(image.pixels, width: image.width, rowOffset: 0, outHeight: height,
                                                   coefficients: vertical) : image.pixels
            let out = needHorizontal ? horizontalPass(rows, inWidth: image.width, rows: 0..<height,
                                                      coefficients: horizontal) : rows
            return RGBImage(width: width, height: height, pixels: out)
        }
        var source = image.pixels
        var rowOffset = 0  // first source row held in `source`
        if needHorizontal {
            // Only the rows the vertical pass will read.
            let first = vertical.start[0], last = vertical.start[height - 1] + vertical.count[height - 1]
            source = horizontalPass(image.pixels, inWidth: image.width, rows: first..<last, coefficients: horizontal)
            rowOffset = first
        }
        guard needVertical else { return RGBImage(width: width, height: height, pixels: source) }
        return RGBImage(width: width, height: height,
                        pixels: verticalPass(source, width: width, rowOffset: rowOffset, outHeight: height,
                                             coefficients: vertical))
    }

    private static func horizontalPass(_ pixels: [UInt8], inWidth: Int, rows: Range<Int>,
                                       coefficients c: Coefficients) -> [UInt8] {
        let outWidth = c.start.count
        var out = [UInt8](repeating: 0, count: rows.count * outWidth * 3)
        let half = Int32(1 << (precisionBits - 1))
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                c.weights.withUnsafeBufferPointer { weights in
                    for (outRow, y) in rows.enumerated() {
                        let rowIn = y * inWidth * 3, rowOut = outRow * outWidth * 3
                        for x in 0..<outWidth {
                            var r = half, g = half, b = half
                            var p = rowIn + c.start[x] * 3
                            let k = x * c.taps
                            for t in 0..<c.count[x] {
                                let w = weights[k + t]
                                r &+= Int32(src[p]) &* w
                                g &+= Int32(src[p + 1]) &* w
                                b &+= Int32(src[p + 2]) &* w
                                p += 3
                            }
                            dst[rowOut + x * 3] = clip8(r)
                            dst[rowOut + x * 3 + 1] = clip8(g)
                            dst[rowOut + x * 3 + 2] = clip8(b)
                        }
                    }
                }
            }
        }
        return out
    }

    private static func verticalPass(_ pixels: [UInt8], width: Int, rowOffset: Int, outHeight: Int,
                                     coefficients c: Coefficients) -> [UInt8] {
        let rowLength = width * 3
        var out = [UInt8](repeating: 0, count: outHeight * rowLength)
        var sums = [Int32](repeating: 0, count: rowLength)
        let half = Int32(1 << (precisionBits - 1))
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                sums.withUnsafeMutableBufferPointer { acc in
                    for y in 0..<outHeight {
                        // Accumulate whole rows at a time: same sums as Pillow's per-pixel loop, contiguous access.
                        for i in 0..<rowLength { acc[i] = half }
                        for t in 0..<c.count[y] {
                            let w = c.weights[y * c.taps + t]
                            let row = (c.start[y] + t - rowOffset) * rowLength
                            for i in 0..<rowLength { acc[i] &+= Int32(src[row + i]) &* w }
                        }
                        for i in 0..<rowLength { dst[y * rowLength + i] = clip8(acc[i]) }
                    }
                }
            }
        }
        return out
    }
}
