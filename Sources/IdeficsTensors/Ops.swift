import Foundation

/// Row-wise operations on row-major float32 activations [rows, width].
public enum Ops {
    /// RMSNorm as transformers computes it: x * rsqrt(mean(x²) + eps) * weight, in float32.
    public static func rmsNorm(_ x: [Float], weight: [Float], eps: Float) -> [Float] {
        let width = weight.count
        var out = [Float](repeating: 0, count: x.count)
        x.withUnsafeBufferPointer { xp in
            out.withUnsafeMutableBufferPointer { op in
                for row in 0..<(x.count / width) {
                    let base = row * width
                    let sumSquares = Vector.dot(xp.baseAddress! + base, xp.baseAddress! + base, count: width)
                    let scale = 1 / (sumSquares / Float(width) + eps).squareRoot()
                    for i in 0..<width { op[base + i] = weight[i] * (xp[base + i] * scale) }
                }
            }
        }
        return out
    }

    /// LayerNorm with biased variance, as torch computes it.
    public static func layerNorm(_ x: [Float], weight: [Float], bias: [Float], eps: Float) -> [Float] {
        let width = weight.count
        var out = [Float](repeating: 0, count: x.count)
        for row in 0..<(x.count / width) {
            let base = row * width
            var mean: Float = 0
            for i in 0..<width { mean += x[base + i] }
            mean /= Float(width)
            var variance: Float = 0
            for i in 0..<width { let d = x[base + i] - mean; variance += d * d }
            variance /= Float(width)
            let scale = 1 / (variance + eps).squareRoot()
            for i in 0..<width { out[base + i] = (x[base + i] - mean) * scale * weight[i] + bias[i] }
        }
        return out
    }

    /// In-place numerically stable softmax over `values[0..<count]`.
    public static func softmax(_ values: UnsafeMutablePointer<Float>, count: Int) {
        var maximum = -Float.infinity
        for i in 0..<count { maximum = max(maximum, values[i]) }
        var sum: Float = 0
        for i in 0..<count {
            let e = expf(values[i] - maximum)
            values[i] = e
            sum += e
        }
        let inverse = 1 / sum
        for i in 0..<count { values[i] *= inverse }
    }

    /// SwiGLU's gate: silu(gate) * up, elementwise.
    public static func siluMultiply(_ gate: [Float], _ up: [Float]) -> [Float] {
        var out = [Float](repeating: 0, count: gate.count)
        for i in 0..<gate.count {
            let g = gate[i]
            out[i] = g / (1 + expf(-g)) * up[i]
        }
        return out
    }

    /// GELU with the tanh approximation (`gelu_pytorch_tanh`), in place.
    public static func geluTanh(_ x: inout [Float]) {
        let c = Float(0.7978845608028654) // sqrt(2 / pi)
        for i in x.indices {
            let v = x[i]
            x[i] = 0.5 * v * (1 + tanhf(c * (v + 0.044715 * v * v * v)))
        }
    }

    /// x += y, elementwise.
    public static func add(_ x: inout [Float], _ y: [Float]) {
        precondition(x.count == y.count)
        for i in 0..<x.count { x[i] += y[i] }
    }
}
