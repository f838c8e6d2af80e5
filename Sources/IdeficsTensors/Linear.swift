import CKernels

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

    /// x is [tokens, in] row-major; returns [tokens, out].
    public func callAsFunction(_ x: [Float], tokens: Int, pool: WorkerPool) -> [Float] {
        precondition(x.count == tokens * inFeatures, "\(weight.name): input has \(x.count) values, not \(tokens)x\(inFeatures)")
        let out = outFeatures, k = inFeatures
        var y = [Float](repeating: 0, count: tokens * out)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                let xBase = xp.baseAddress!, yBase = yp.baseAddress!
                let type = weight.kernelType
                pool.forEachRange(count: out, granule: 32, work: tokens * out * k) { rows in
                    ck_matmul_rows(xBase, tokens, k, weight.data, type, k, k, rows.lowerBound, rows.upperBound, yBase, out)
                }
            }
        }
        if let bias {
            for t in 0..<tokens {
                for i in 0..<out { y[t * out + i] += bias[i] }
            }
        }
        return y
    }
}
