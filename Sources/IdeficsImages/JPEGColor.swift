/// libjpeg-turbo's upsampling (jdsample.c, fancy on: Pillow's default) and color conversion (jdcolor.c).
enum JPEGColor {
    /// Upsamples one component plane to the image size. `exact` is false for non-integral factors (returns []).
    /// h2v1 / h2v2 use the triangle filters when the component is wider than 2 samples, h1v2 always; other
    /// integral factors replicate (libjpeg's int_upsample). Edge rows/columns repeat the nearest sample.
    static func upsample(_ plane: [UInt8], stride: Int, width: Int, height: Int, factorX: Int, factorY: Int,
                         exact: Bool, outWidth: Int, outHeight: Int) -> [UInt8] {
        guard exact else { return [] }
        var out = [UInt8](repeating: 0, count: outWidth * outHeight)
        plane.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                // Rows of the output image at their upsampled width (may be 1 wider than the image).
                var row = [UInt8](repeating: 0, count: width * factorX)
                for y in 0..<outHeight {
                    let sy = y / factorY
                    let current = sy * stride
                    let fancyVertical = factorY == 2 && (factorX == 1 || (factorX == 2 && width > 2))
                    if fancyVertical {
                        // The neighbouring row is above for even output rows and below for odd ones, clamped.
                        let neighbour = (y % 2 == 0 ? max(sy - 1, 0) : min(sy + 1, height - 1)) * stride
                        if factorX == 1 {
                            let bias = y % 2 == 0 ? 1 : 2
                            for x in 0..<width {
                                row[x] = UInt8((Int(src[current + x]) * 3 + Int(src[neighbour + x]) + bias) >> 2)
                            }
                        } else {
                            h2v2Row(src, current, neighbour, width, &row)
                        }
                    } else if factorX == 2 && factorY == 1 && width > 2 {
                        h2v1Row(src, current, width, &row)
                    } else {
                        for x in 0..<(width * factorX) { row[x] = src[current + x / factorX] }
                    }
                    for x in 0..<outWidth { dst[y * outWidth + x] = row[x] }
                }
            }
        }
        return out
    }

    private static func h2v1Row(_ src: UnsafeBufferPointer<UInt8>, _ at: Int, _ width: Int, _ row: inout [UInt8]) {
        func s(_ i: Int) -> Int { Int(src[at + i]) }
        row[0] = src[at]
        row[1] = UInt8((s(0) * 3 + s(1) + 2) >> 2)
        for i in 1..<(width - 1) {
            row[2 * i] = UInt8((s(i) * 3 + s(i - 1) + 1) >> 2)
            row[2 * i + 1] = UInt8((s(i) * 3 + s(i + 1) + 2) >> 2)
        }
        row[2 * width - 2] = UInt8((s(width - 1) * 3 + s(width - 2) + 1) >> 2)
        row[2 * width - 1] = src[at + width - 1]
    }

    private static func h2v2Row(_ src: UnsafeBufferPointer<UInt8>, _ at: Int, _ neighbour: Int, _ width: Int,
                                _ row: inout [UInt8]) {
        // Column sums of 3 * nearer row + farther row, then 3:1 horizontally with alternating rounding biases.
        func sum(_ i: Int) -> Int { Int(src[at + i]) * 3 + Int(src[neighbour + i]) }
        var last = sum(0), this = sum(0), next = sum(1)
        row[0] = UInt8((this * 4 + 8) >> 4)
        row[1] = UInt8((this * 3 + next + 7) >> 4)
        for i in 1..<(width - 1) {
            last = this
            this = next
            next = sum(i + 1)
            row[2 * i] = UInt8((this * 3 + last + 8) >> 4)
            row[2 * i + 1] = UInt8((this * 3 + next + 7) >> 4)
        }
        last = this
        this = next
        row[2 * width - 2] = UInt8((this * 3 + last + 8) >> 4)
        row[2 * width - 1] = UInt8((this * 4 + 7) >> 4)
    }

    static func interleave(_ planes: [[UInt8]]) -> [UInt8] {
        let count = planes[0].count, channels = planes.count
        var out = [UInt8](repeating: 0, count: count * channels)
        for c in 0..<channels {
            for i in 0..<count { out[i * channels + c] = planes[c][i] }
        }
        return out
    }

    private static let scaleBits = 16, oneHalf = 1 << 15
    private static func fix(_ x: Double) -> Int { Int(x * Double(1 << scaleBits) + 0.5) }
    /// build_ycc_rgb_table: Cr->R, Cb->B rounded; Cr->G, Cb->G scaled (ONE_HALF folded into Cb->G).
    private static let tables: (crR: [Int], cbB: [Int], crG: [Int], cbG: [Int]) = {
        let xs = (0..<256).map { $0 - 128 }
        return (xs.map { (fix(1.40200) * $0 + oneHalf) >> scaleBits }, xs.map { (fix(1.77200) * $0 + oneHalf) >> scaleBits },
                xs.map { -fix(0.71414) * $0 }, xs.map { -fix(0.34414) * $0 + oneHalf })
    }()

    @inline(__always)
    private static func ycc(_ y: UInt8, _ cb: UInt8, _ cr: UInt8) -> (UInt8, UInt8, UInt8) {
        let y = Int(y), cb = Int(cb), cr = Int(cr)
        return (UInt8(clamping: y + tables.crR[cr]), UInt8(clamping: y + ((tables.cbG[cb] + tables.crG[cr]) >> scaleBits)),
                UInt8(clamping: y + tables.cbB[cb]))
    }

    static func yccToRGB(_ planes: [[UInt8]]) -> [UInt8] {
        let count = planes[0].count
        var out = [UInt8](repeating: 0, count: count * 3)
        for i in 0..<count {
            let (r, g, b) = ycc(planes[0][i], planes[1][i], planes[2][i])
            out[3 * i] = r
            out[3 * i + 1] = g
            out[3 * i + 2] = b
        }
        return out
    }

    /// ycck_cmyk_convert: C, M, Y are 255 minus the YCC->RGB result; K passes through.
    static func ycckToCMYK(_ planes: [[UInt8]]) -> [UInt8] {
        let count = planes[0].count
        var out = [UInt8](repeating: 0, count: count * 4)
        for i in 0..<count {
            let (r, g, b) = ycc(planes[0][i], planes[1][i], planes[2][i])
            out[4 * i] = 255 - r
            out[4 * i + 1] = 255 - g
            out[4 * i + 2] = 255 - b
            out[4 * i + 3] = planes[3][i]
        }
        return out
    }
}
