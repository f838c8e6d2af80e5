import CKernels

/// The precision of activations entering matrix products. float32: exact products whatever the stored weights.
/// bf16 (BF16 weights: `WeightTensor.multiplied(at:pool:)` rounds F32 and F16 ones to BF16 first): activations
/// rounded to bf16 first, as torch computes a bf16 model; the products stay exact and the sums float32. CPUs with
/// AMX run them on its tiles (~4x the float32 FMA's rate per core), CPUs with AVX512_BF16 with vdpbf16ps (twice the
/// FMA's flops on Zen 4, half of them on Emerald Rapids, which has AMX).
public enum ProductPrecision: String, Sendable, CaseIterable {
    case float32 = "f32"
    case bfloat16 = "bf16"
}

/// A fully connected layer `y = x Wᵀ (+ b)` with W [out, in] read in its stored format (F32, F16, BF16 or a
/// quantized block format): one kernel entry whatever the format, so model code never sees it.
public struct Linear: Sendable {
    public let weight: WeightTensor
    public let bias: [Float]?
    public var outFeatures: Int { weight.shape[0] }
    public var inFeatures: Int { weight.shape[1] }

    public init(weight: WeightTensor, bias: [Float]? = nil) {
        precondition(weight.isMatrixWeight, "\(weight.name): not a matrix of a supported format")
        precondition(bias.map { $0.count == weight.shape[0] } ?? true, "\(weight.name): bias size")
        self.weight = weight
        self.bias = bias
    }

    /// Memory a product reuses from one call to the next (the activations packed, quantized or rounded for the
    /// kernels): a forward pass that keeps one for all its products allocates it once, at its largest size.
    public struct Scratch: Sendable {
        private var bytes: [UInt8] = []
        var rounded: [Float] = []

        public init() {}

        /// `body` on at least `count` bytes from a 64-byte boundary: AMX tile rows that straddle two cache lines
        /// load at a third of the speed or less (measured on Emerald Rapids), and an array's storage starts 16 or 48
        /// bytes past one. The bytes only grow, so a smaller product after a larger one touches nothing new.
        mutating func aligned(count: Int, _ body: (UnsafeMutableRawPointer) -> Void) {
            if bytes.count < count + 63 { bytes.prepare(count: count + 63) }
            bytes.withUnsafeMutableBytes { raw in
                body(UnsafeMutableRawPointer(bitPattern: (Int(bitPattern: raw.baseAddress!) + 63) & ~63)!)
            }
        }
    }

    /// x is [tokens, in] row-major; returns [tokens, out].
    public func callAsFunction(_ x: [Float], tokens: Int, pool: WorkerPool) -> [Float] {
        var y = [Float](), scratch = Scratch()
        self(x, tokens: tokens, into: &y, scratch: &scratch, pool: pool)
        return y
    }

    /// x [tokens, in] times the weights into y, made [tokens, out] (its storage kept when it is large enough).
    public func callAsFunction(_ x: [Float], tokens: Int, into y: inout [Float], scratch: inout Scratch,
                               pool: WorkerPool) {
        precondition(x.count == tokens * inFeatures, "\(weight.name): input has \(x.count) values, not \(tokens)x\(inFeatures)")
        y.prepare(count: tokens * outFeatures)
        guard tokens > 0 else { return } // no rows: empty arrays may have no storage to point at
        x.withUnsafeBufferPointer { x in
            y.withUnsafeMutableBufferPointer { y in
                self(rows: x.baseAddress!, tokens: tokens, into: y.baseAddress!, scratch: &scratch, pool: pool)
            }
        }
    }

    /// x [tokens, in] (rows contiguous) times the weights into y [tokens, out]. Every kernel writes each output
    /// value, so y is not zero-filled first; the bias is added by the bf16 GEMM as it stores its tiles, else row by
    /// row across the pool. (Labelled `rows:` so that an array never converts to the pointer by accident.)
    public func callAsFunction(rows x: UnsafePointer<Float>, tokens: Int, into y: UnsafeMutablePointer<Float>,
                               scratch: inout Scratch, pool: WorkerPool) {
        guard tokens > 0 else { return }
        let out = outFeatures
        if weight.products == .float32 {
            multiply(x, tokens: tokens, into: y, scratch: &scratch, pool: pool)
        } else if tokens >= ck_gemm_min_tokens() && ck_bf16_products() != 0 { // below it the weights stream
            return multiplyBF16(x, tokens: tokens, into: y, scratch: &scratch, pool: pool) // adds the bias itself
        } else if weight.quantization == nil && weight.dtype == .bf16 && ck_bf16_products() != 0 {
            let (k, w) = (inFeatures, weight.data.assumingMemoryBound(to: UInt16.self))
            pool.forEachRange(count: out, granule: 32, work: tokens * out * k) { rows in
                let done = ck_matmul_bf16_few(x, tokens, k, w, k, k, rows.lowerBound, rows.upperBound, y, out)
                precondition(done != 0, "\(weight.name): out of memory for rounded activations")
            }
        } else {
            var rounded = scratch.rounded
            scratch.rounded = [] // held here while `multiply` uses the rest of the scratch
            rounded.prepare(count: tokens * inFeatures)
            rounded.withUnsafeMutableBufferPointer { r in
                r.baseAddress!.update(from: x, count: r.count)
                ck_round_floats_to_bf16(r.baseAddress!, r.count)
                multiply(r.baseAddress!, tokens: tokens, into: y, scratch: &scratch, pool: pool)
            }
            scratch.rounded = rounded
        }
        if let bias {
            pool.forEachRange(count: tokens, work: tokens * out) { rows in
                for t in rows { ck_add(y + t * out, bias, out) }
            }
        }
    }

    /// The float32 activations' product with the stored weights, split by output rows across the pool. From
    /// ck_gemm_min_tokens() tokens the activations are packed for the GEMM once, shared by every thread. Quantized
    /// weights multiply int8-quantized activations instead below that many tokens, and at any count where that is
    /// faster (`ck_int8_prompts`: a 16-row group's weights stay in cache for every 2-4 tokens; with VNNI 2.4-3.4x the
    /// float32 GEMM's prefill on the dequantized weights, measured on the q4 twin).
    private func multiply(_ x: UnsafePointer<Float>, tokens: Int, into y: UnsafeMutablePointer<Float>,
                          scratch: inout Scratch, pool: WorkerPool) {
        let out = outFeatures, k = inFeatures, type = weight.kernelType
        if weight.quantization != nil, tokens < ck_gemm_min_tokens() || ck_int8_prompts() != 0 {
            // The activations quantized to int8 blocks once, shared by every thread.
            scratch.aligned(count: ck_int8_activation_bytes(tokens, k)) { a in
                pool.forEachRange(count: tokens, work: tokens * k * 4) { t in
                    ck_quantize_activations(x, tokens, k, k, type, t.lowerBound, t.upperBound, a)
                }
                pool.forEachRange(count: out, granule: 32, work: tokens * out * k) { rows in
                    ck_matmul_int8_rows(a, tokens, weight.data, type, k, k, rows.lowerBound, rows.upperBound, y, out)
                }
            }
            return
        }
        guard tokens >= ck_gemm_min_tokens() else {
            pool.forEachRange(count: out, granule: 32, work: tokens * out * k) { rows in
                ck_matmul_rows(x, tokens, k, weight.data, type, k, k, rows.lowerBound, rows.upperBound, y, out)
            }
            return
        }
        scratch.aligned(count: ck_packed_activation_floats(tokens, k) * MemoryLayout<Float>.size) { raw in
            let a = raw.assumingMemoryBound(to: Float.self) // written and read by the C kernels only
            pool.forEachRange(count: ck_activation_groups(tokens), work: tokens * k) { groups in
                ck_pack_activations(x, tokens, k, k, groups.lowerBound, groups.upperBound, a)
            }
            pool.forEachRange(count: out, granule: 32, work: tokens * out * k) { rows in
                let done = ck_matmul_packed_rows(a, tokens, weight.data, type, k, k, rows.lowerBound,
                                                 rows.upperBound, y, out)
                precondition(done != 0, "\(weight.name): out of memory for GEMM panels")
            }
        }
    }

    /// The bias's storage (nil without one) for the kernels.
    private func withBias(_ body: (UnsafePointer<Float>?) -> Void) {
        guard let bias else { return body(nil) }
        bias.withUnsafeBufferPointer { body($0.baseAddress) }
    }

    /// The activations rounded to bf16 once, in the bf16 GEMM's layout and across the pool, then the GEMM on every
    /// thread's rows, the bias added as each tile is stored (no pass over y of its own).
    private func multiplyBF16(_ x: UnsafePointer<Float>, tokens: Int, into y: UnsafeMutablePointer<Float>,
                              scratch: inout Scratch, pool: WorkerPool) {
        let out = outFeatures, k = inFeatures
        let w = weight.data.assumingMemoryBound(to: UInt16.self)
        scratch.aligned(count: ck_bf16_activation_bytes(tokens, k)) { a in
            pool.forEachRange(count: (tokens + 15) / 16, work: tokens * k) { groups in
                ck_pack_bf16_activations(x, tokens, k, k, groups.lowerBound, groups.upperBound, a)
            }
            withBias { bias in
                pool.forEachRange(count: out, granule: 32, work: tokens * out * k) { rows in
                    let done = ck_matmul_bf16_rows(a, tokens, w, k, k, rows.lowerBound, rows.upperBound, y, out, bias)
                    precondition(done != 0, "\(weight.name): out of memory for bf16 GEMM panels")
                }
            }
        }
    }
}
