/// libjpeg's accurate integer inverse DCT (jidctint.c `jpeg_idct_islow`, Pillow's default `JDCT_ISLOW`), including
/// its output range-limit table, so samples match libjpeg-turbo bit for bit (its SIMD versions are exact too).
enum JPEGIDCT {
    private static let constBits = 13, pass1Bits = 2

    /// Post-IDCT range limit: index `(x & 1023)` for a centered value x, as libjpeg's `IDCT_range_limit`.
    private static let rangeLimit: [UInt8] = (0..<1024).map { index in
        switch index {
        case 0..<128: return UInt8(index + 128)
        case 128..<512: return 255
        case 512..<896: return 0
        default: return UInt8(index - 896)
        }
    }

    /// Scratch space `transform` needs: 64 + 8 Ints.
    static let workspaceSize = 72

    /// Transforms one 8x8 block of quantized coefficients (natural order) into samples at `output` (row stride
    /// `stride`).
    static func transform(_ coefficients: UnsafePointer<Int16>, quant: UnsafePointer<Int32>,
                          output: UnsafeMutablePointer<UInt8>, stride: Int, workspace ws: UnsafeMutablePointer<Int>) {
        // Pass 1: columns into the workspace, scaled up by 2^pass1Bits.
        for column in 0..<8 {
            let c = coefficients + column, q = quant + column
            if c[8] == 0 && c[16] == 0 && c[24] == 0 && c[32] == 0 && c[40] == 0 && c[48] == 0 && c[56] == 0 {
                let dc = Int(c[0]) * Int(q[0]) << pass1Bits
                for row in 0..<8 { ws[row * 8 + column] = dc }
                continue
            }
            butterfly(Int(c[0]) * Int(q[0]), Int(c[8]) * Int(q[8]), Int(c[16]) * Int(q[16]), Int(c[24]) * Int(q[24]),
                      Int(c[32]) * Int(q[32]), Int(c[40]) * Int(q[40]), Int(c[48]) * Int(q[48]),
                      Int(c[56]) * Int(q[56]), shift: constBits - pass1Bits, into: ws + column, stride: 8)
        }
        // Pass 2: rows into samples, removing pass 1's scale and the DCT's factor 8, then range-limited.
        let row8 = ws + 64
        for row in 0..<8 {
            let w = ws + row * 8, o = output + row * stride
            if w[1] == 0 && w[2] == 0 && w[3] == 0 && w[4] == 0 && w[5] == 0 && w[6] == 0 && w[7] == 0 {
                let value = rangeLimit[descale(w[0], pass1Bits + 3) & 1023]
                for i in 0..<8 { o[i] = value }
                continue
            }
            butterfly(w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], shift: constBits + pass1Bits + 3, into: row8,
                      stride: 1)
            for i in 0..<8 { o[i] = rangeLimit[row8[i] & 1023] }
        }
    }

    @inline(__always)
    private static func descale(_ x: Int, _ n: Int) -> Int { (x + (1 << (n - 1))) >> n }

    /// One 8-point islow IDCT (identical arithmetic in both passes); outputs descaled by `shift`.
    @inline(__always)
    private static func butterfly(_ i0: Int, _ i1: Int, _ i2: Int, _ i3: Int, _ i4: Int, _ i5: Int, _ i6: Int,
                                  _ i7: Int, shift: Int, into out: UnsafeMutablePointer<Int>, stride: Int) {
        // Even part.
        let z1 = (i2 + i6) * 4433                 // FIX(0.541196100)
        let e2 = z1 + i6 * -15137                 // -FIX(1.847759065)
        let e3 = z1 + i2 * 6270                   // FIX(0.765366865)
        let e0 = (i0 + i4) << constBits, e1 = (i0 - i4) << constBits
        let t10 = e0 + e3, t13 = e0 - e3, t11 = e1 + e2, t12 = e1 - e2
        // Odd part.
        let o1 = i7 + i1, o2 = i5 + i3, o3 = i7 + i3, o4 = i5 + i1
        let z5 = (o3 + o4) * 9633                 // FIX(1.175875602)
        let a1 = o1 * -7373, a2 = o2 * -20995     // -FIX(0.899976223), -FIX(2.562915447)
        let a3 = o3 * -16069 + z5, a4 = o4 * -3196 + z5  // -FIX(1.961570560), -FIX(0.390180644)
        let p0 = i7 * 2446 + a1 + a3              // FIX(0.298631336)
        let p1 = i5 * 16819 + a2 + a4             // FIX(2.053119869)
        let p2 = i3 * 25172 + a2 + a3             // FIX(3.072711026)
        let p3 = i1 * 12299 + a1 + a4             // FIX(1.501321110)
        out[0] = descale(t10 + p3, shift)
        out[7 * stride] = descale(t10 - p3, shift)
        out[stride] = descale(t11 + p2, shift)
        out[6 * stride] = descale(t11 - p2, shift)
        out[2 * stride] = descale(t12 + p1, shift)
        out[5 * stride] = descale(t12 - p1, shift)
        out[3 * stride] = descale(t13 + p0, shift)
        out[4 * stride] = descale(t13 - p0, shift)
    }
}
