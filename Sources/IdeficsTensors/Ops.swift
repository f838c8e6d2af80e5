import Foundation
import CKernels

/// Row-wise operations on row-major float32 activations [rows, width], vectorized in C (CKernels). Given a pool,
/// large inputs are split across its threads by rows (elementwise ones by runs of values); small ones run inline.
public enum Ops {
    /// RMSNorm as transformers computes it: x * rsqrt(mean(x²) + eps) * weight, in float32.
    public static func rmsNorm(_ x: [Float], weight: [Float], eps: Float, pool: WorkerPool? = nil) -> [Float] {
        var out = [Float]()
        rmsNorm(x, weight: weight, eps: eps, into: &out, pool: pool)
        return out
    }

    /// RMSNorm into `out` (its storage kept when it is large enough).
    public static func rmsNorm(_ x: [Float], weight: [Float], eps: Float, into out: inout [Float],
                               pool: WorkerPool? = nil) {
        let width = weight.count
        rows(of: x, width: width, into: &out, pool: pool) { x, rows, o in
            ck_rms_norm(x, weight, eps, rows, width, o)
        }
    }

    /// RMSNorm of `count` rows at `x` into the rows at `out` (parts of larger buffers).
    public static func rmsNorm(rows x: UnsafePointer<Float>, count: Int, weight: [Float], eps: Float,
                               into out: UnsafeMutablePointer<Float>, pool: WorkerPool? = nil) {
        let width = weight.count
        forEachRows(count, width: width, pool: pool) { rows in
            ck_rms_norm(x + rows.lowerBound * width, weight, eps, rows.count, width, out + rows.lowerBound * width)
        }
    }

    /// LayerNorm with biased variance, as torch computes it.
    public static func layerNorm(_ x: [Float], weight: [Float], bias: [Float], eps: Float, pool: WorkerPool? = nil) -> [Float] {
        var out = [Float]()
        layerNorm(x, weight: weight, bias: bias, eps: eps, into: &out, pool: pool)
        return out
    }

    /// LayerNorm into `out` (its storage kept when it is large enough).
    public static func layerNorm(_ x: [Float], weight: [Float], bias: [Float], eps: Float, into out: inout [Float],
                                 pool: WorkerPool? = nil) {
        let width = weight.count
        rows(of: x, width: width, into: &out, pool: pool) { x, rows, o in
            ck_layer_norm(x, weight, bias, eps, rows, width, o)
        }
    }

    /// `body(x rows, row count, out rows)` over x's rows of `width`, into `out` made x's size.
    private static func rows(of x: [Float], width: Int, into out: inout [Float], pool: WorkerPool?,
                             _ body: (UnsafePointer<Float>, Int, UnsafeMutablePointer<Float>) -> Void) {
        out.prepare(count: x.count)
        x.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { o in
                forEachRows(x.count / width, width: width, pool: pool) { rows in
                    body(x.baseAddress! + rows.lowerBound * width, rows.count, o.baseAddress! + rows.lowerBound * width)
                }
            }
        }
    }

    /// Runs `body` over [0, rows) in ranges of rows, across the pool when there is one and enough work.
    private static func forEachRows(_ rows: Int, width: Int, pool: WorkerPool?, _ body: (Range<Int>) -> Void) {
        guard let pool, rows > 1 else { return body(0..<rows) }
        pool.forEachRange(count: rows, work: rows * width) { body($0) }
    }

    /// In-place numerically stable softmax over `values[0..<count]`.
    public static func softmax(_ values: UnsafeMutablePointer<Float>, count: Int) {
        _ = ck_softmax(values, count)
    }

    /// SwiGLU's gate: silu(gate) * up, elementwise, in place of `gate`.
    public static func siluMultiply(_ gate: inout [Float], _ up: [Float], pool: WorkerPool? = nil) {
        precondition(gate.count == up.count)
        let count = gate.count
        gate.withUnsafeMutableBufferPointer { g in
            up.withUnsafeBufferPointer { u in
                forEachRows(count, width: 1, pool: pool) { r in
                    let values = g.baseAddress! + r.lowerBound
                    ck_silu_mul(values, u.baseAddress! + r.lowerBound, values, r.count)
                }
            }
        }
    }

    /// GELU with the tanh approximation (`gelu_pytorch_tanh`), in place.
    public static func geluTanh(_ x: inout [Float], pool: WorkerPool? = nil) {
        let count = x.count
        x.withUnsafeMutableBufferPointer { x in
            forEachRows(count, width: 1, pool: pool) { r in ck_gelu_tanh(x.baseAddress! + r.lowerBound, r.count) }
        }
    }

    /// x += y, elementwise.
    public static func add(_ x: inout [Float], _ y: [Float], pool: WorkerPool? = nil) {
        precondition(x.count == y.count)
        let count = x.count
        x.withUnsafeMutableBufferPointer { x in
            y.withUnsafeBufferPointer { y in
                forEachRows(count, width: 1, pool: pool) { r in
                    ck_add(x.baseAddress! + r.lowerBound, y.baseAddress! + r.lowerBound, r.count)
                }
            }
        }
    }
}

/// Which kernel set runs: the widest the CPU has, or the one `IDEFICS_KERNELS` names. `amx` is `avx512` with the
/// bf16 products on AMX tiles (Intel Sapphire Rapids and later, where Linux grants the tile state).
public enum KernelPath: String, CaseIterable, Sendable {
    case portable, avx2, avx512, amx

    public static var active: KernelPath { KernelPath(ck_kernel_path_active()) }

    public var isSupported: Bool { ck_kernel_path_supported(path) != 0 }

    /// Whether the active kernels multiply at bf16 precision with a bf16 GEMM (AMX tiles, or AVX512_BF16's
    /// vdpbf16ps); elsewhere bf16 products run the float32 kernels on rounded activations.
    public static var hasBF16Products: Bool { ck_bf16_products() != 0 }

    /// Whether the active kernels take the integer products of quantized weights with AVX512_VNNI (vpdpbusd);
    /// elsewhere AVX2's maddubs or a portable loop.
    public static var hasInt8DotProducts: Bool { ck_int8_vnni() != 0 }

    /// Whether quantized weights multiply int8-quantized activations for prompts too (VNNI, or the AVX2 kernels);
    /// elsewhere a prompt's products dequantize the weights into the float32 GEMM.
    public static var quantizesPromptActivations: Bool { ck_int8_prompts() != 0 }

    /// Tokens from which a product's output rows do not depend on how many rows its call has: below, the few-token
    /// paths sum in another order; on AMX the tiles' GEMM changes schedule past 128 tokens.
    public static var rowIndependentTokens: Int { active == .amx ? 129 : Int(ck_gemm_min_tokens()) }

    /// Why `IDEFICS_KERNELS` was not followed (an unknown name, or kernels this CPU cannot run), if it was not.
    public static var requestProblem: String? { ck_kernel_request_problem().map { String(cString: $0) } }

    init(_ path: ck_kernel_path) {
        self = switch path {
        case CK_PATH_AMX: .amx
        case CK_PATH_AVX512: .avx512
        case CK_PATH_AVX2: .avx2
        default: .portable
        }
    }

    private var path: ck_kernel_path {
        switch self {
        case .portable: CK_PATH_PORTABLE
        case .avx2: CK_PATH_AVX2
        case .avx512: CK_PATH_AVX512
        case .amx: CK_PATH_AMX
        }
    }
}

extension Ops {
    /// Exact GELU, 0.5 x (1 + erf(x / sqrt 2)), in place (torch's `gelu`, CLIP's activation).
    public static func geluErf(_ x: inout [Float]) {
        let scale = Float(0.5).squareRoot()
        for i in x.indices { x[i] = 0.5 * x[i] * (1 + erff(x[i] * scale)) }
    }

    /// x * sigmoid(1.702 x), in place (`quick_gelu`).
    public static func quickGelu(_ x: inout [Float]) {
        for i in x.indices { x[i] = x[i] / (1 + expf(-1.702 * x[i])) }
    }
}

extension Ops {
    /// max(x, 0), in place.
    public static func relu(_ x: inout [Float]) {
        for i in x.indices where !(x[i] > 0) { x[i] = 0 }
    }
}
