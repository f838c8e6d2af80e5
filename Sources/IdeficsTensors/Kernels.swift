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

    /// Attention of `queries` query rows of one head, each seeing the slots [lower[i], upper[i]) of `keys` and
    /// `values` ([slots, depth] rows with stride ldkv): out[i] = softmax(scale · q[i] · kⱼ) · vⱼ, tiled with an
    /// online softmax on the calling thread. A row without slots gets zeros. At bf16 precision where the kernels have
    /// bf16 products (`KernelPath.hasBF16Products`), queries, keys, values and the softmax weights are rounded to
    /// bf16 as torch's bf16 flash attention does them.
    public static func attention(_ q: UnsafePointer<Float>, queries: Int, ldq: Int, keys: UnsafePointer<Float>,
                                 values: UnsafePointer<Float>, ldkv: Int, depth: Int, scale: Float,
                                 lower: UnsafePointer<Int32>, upper: UnsafePointer<Int32>,
                                 into out: UnsafeMutablePointer<Float>, ldo: Int, precision: ProductPrecision = .float32) {
        let done = precision == .bfloat16
            ? ck_attention_bf16(q, queries, ldq, keys, values, ldkv, depth, scale, lower, upper, out, ldo)
            : ck_attention(q, queries, ldq, keys, values, ldkv, depth, scale, lower, upper, out, ldo)
        precondition(done != 0, "out of memory for attention tiles of \(queries) x \(depth)")
    }

    /// Attention of `heads` query rows (stride ldq) that share one key/value head, over the slots `slots` of `keys`
    /// and `values` (stride ldkv): one pass over the keys and one over the values for the group (decoding), the same
    /// values as a dot, softmax and axpy per query. No slot: zeros.
    public static func attention(_ q: UnsafePointer<Float>, heads: Int, ldq: Int, keys: UnsafePointer<Float>,
                                 values: UnsafePointer<Float>, ldkv: Int, depth: Int, scale: Float, slots: Range<Int>,
                                 into out: UnsafeMutablePointer<Float>, ldo: Int) {
        let done = ck_attention_group(q, heads, ldq, keys, values, ldkv, depth, scale, slots.lowerBound, slots.upperBound,
                                      out, ldo)
        precondition(done != 0, "out of memory for the scores of \(heads) x \(slots.count) slots")
    }

    /// y += a * x
    @inline(__always)
    public static func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        ck_axpy(a, x, y, count)
    }
}

extension Array where Element == Float {
    /// `reserveCapacity`, the storage from 4 MiB backed by huge pages where the OS offers them: a long KV cache is
    /// read one row per 4 KiB page in every decoding step, and with small pages that is a page walk per row.
    public mutating func reserveCapacity(hugePages count: Int) {
        reserveCapacity(count)
        guard count >= 1 << 20 else { return }
        let bytes = capacity * MemoryLayout<Float>.size
        withUnsafeMutableBufferPointer { buffer in
            if let base = buffer.baseAddress { ck_advise_huge_pages(base, bytes) }
        }
    }
}

extension Array where Element: Numeric & BitwiseCopyable {
    /// Makes the array `count` values long for a caller that writes every one: storage large enough is kept (a
    /// buffer reused from call to call allocates once, at its largest size; values added within it are zeros), else
    /// replaced by fresh storage that is not zeroed, backed by huge pages from 8 MiB where the OS offers them (a
    /// fresh activation of hundreds of megabytes would otherwise spend a tenth of its first pass in page faults).
    public mutating func prepare(count newCount: Int) {
        if newCount <= capacity {
            if count > newCount { removeLast(count - newCount) }
            if count < newCount { append(contentsOf: repeatElement(0, count: newCount - count)) }
            return
        }
        self = Self(unsafeUninitializedCapacity: newCount) { buffer, initialized in
            let bytes = newCount * MemoryLayout<Element>.stride
            if bytes >= 1 << 23, let base = buffer.baseAddress { ck_advise_huge_pages(base, bytes) }
            initialized = newCount
        }
    }
}
