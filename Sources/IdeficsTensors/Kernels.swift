import CKernels

extension DType {
    var kernelType: ck_dtype {
        switch self {
        case .f32: CK_F32
        case .f16: CK_F16
        case .bf16: CK_BF16
        default: preconditionFailure("\(rawValue) is not a matrix weight type")
        }
    }
}

func convertToFloat(_ source: UnsafeRawPointer, _ dtype: DType, count: Int, into destination: UnsafeMutablePointer<Float>) {
    ck_to_f32(source, dtype.kernelType, count, destination)
}

/// Small vector helpers over float32 buffers, vectorized in C.
public enum Vector {
    @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        ck_dot(a, b, count)
    }

    /// y[t, r] = Σₖ x[t, k] · w[r, k] for t < rows, r < wRows, in float32 on the calling thread; each operand has
    /// its own row stride.
    public static func matmul(_ x: UnsafePointer<Float>, rows: Int, ldx: Int, _ w: UnsafePointer<Float>, wRows: Int,
                              ldw: Int, depth: Int, into y: UnsafeMutablePointer<Float>, ldy: Int) {
        ck_matmul_rows(x, rows, ldx, w, CK_F32, depth, ldw, 0, wRows, y, ldy)
    }

    /// y += a * x
    @inline(__always)
    public static func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        ck_axpy(a, x, y, count)
    }
}
