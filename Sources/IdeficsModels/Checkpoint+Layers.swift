import IdeficsCheckpoint
import IdeficsTensors

extension Checkpoint {
    /// The matrix [out, input] of layer `name` as stored (float, block-quantized or AWQ), and `<name>.bias` when
    /// `bias`, checked against the config's shape.
    func linear(_ name: String, out: Int, input: Int, bias: Bool = false) throws -> Linear {
        Linear(weight: matrix(try storedMatrix(name, rows: out, columns: input)),
               bias: bias ? try floats(name + ".bias", count: out) : nil)
    }

    /// A matrix as the kernels will read it: a float one quantized when this load asks for it (`quantization`),
    /// logged under `name` (its own by default); else multiplied at the load's `products` precision.
    func matrix(_ weight: WeightTensor, as name: String? = nil) -> WeightTensor {
        guard let quantization, weight.quantization == nil, quantization.applies(to: weight.name) else {
            return weight.multiplied(at: products, pool: pool)
        }
        let quantized = weight.quantized(quantization.format, pool: pool)
        quantization.log?.add(quantized, as: name ?? weight.name)
        return quantized
    }
}

/// The gated MLP of Mistral, the perceiver and the modality projection: down(silu(gate(x)) * up(x)).
struct SwiGLU: Sendable {
    let gate, up, down: Linear

    /// The intermediate activations of a pass, kept for the next one.
    struct Buffers: Sendable {
        var gate: [Float] = [], up: [Float] = []
        var scratch = Linear.Scratch()
    }

    func callAsFunction(_ x: [Float], tokens: Int, pool: WorkerPool) -> [Float] {
        var out = [Float](), buffers = Buffers()
        self(x, tokens: tokens, into: &out, buffers: &buffers, pool: pool)
        return out
    }

    /// Into `out` [tokens, output] (its storage kept when it is large enough). Over 1,024 rows, the rows pass in even
    /// chunks of 512-1,024: the two intermediate activations [rows, intermediate] are the largest a forward pass
    /// holds (the connector's 4,900 patches x 14,336 would be 281 MB each). Every chunk is over 128 rows, past both
    /// token counts at which a product changes its schedule (ck_gemm_min_tokens, 20; the AMX GEMM's 128), so each
    /// row's sums are those of one pass (a row's outputs do not depend on the other rows of the call: LinearTests).
    func callAsFunction(_ x: [Float], tokens: Int, into out: inout [Float], buffers: inout Buffers, pool: WorkerPool) {
        precondition(x.count == tokens * gate.inFeatures, "\(gate.weight.name): input is not \(tokens) rows")
        let (input, output) = (gate.inFeatures, down.outFeatures)
        let chunks = (tokens + 1023) / 1024
        out.prepare(count: tokens * output)
        x.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { out in
                for c in 0..<chunks {
                    let (first, end) = (tokens * c / chunks, tokens * (c + 1) / chunks)
                    rows(x.baseAddress! + first * input, tokens: end - first, into: out.baseAddress! + first * output,
                         buffers: &buffers, pool: pool)
                }
            }
        }
    }

    private func rows(_ x: UnsafePointer<Float>, tokens: Int, into out: UnsafeMutablePointer<Float>,
                      buffers b: inout Buffers, pool: WorkerPool) {
        b.gate.prepare(count: tokens * gate.outFeatures)
        b.up.prepare(count: tokens * up.outFeatures)
        b.gate.withUnsafeMutableBufferPointer {
            gate(rows: x, tokens: tokens, into: $0.baseAddress!, scratch: &b.scratch, pool: pool)
        }
        b.up.withUnsafeMutableBufferPointer {
            up(rows: x, tokens: tokens, into: $0.baseAddress!, scratch: &b.scratch, pool: pool)
        }
        Ops.siluMultiply(&b.gate, b.up, pool: pool)
        b.gate.withUnsafeBufferPointer {
            down(rows: $0.baseAddress!, tokens: tokens, into: out, scratch: &b.scratch, pool: pool)
        }
    }
}

extension SwiGLU {
    /// Weights `<prefix>gate_proj`, `<prefix>up_proj` and `<prefix>down_proj`.
    init(checkpoint: Checkpoint, prefix: String, input: Int, intermediate: Int, output: Int) throws {
        self.init(gate: try checkpoint.linear(prefix + "gate_proj", out: intermediate, input: input),
                  up: try checkpoint.linear(prefix + "up_proj", out: intermediate, input: input),
                  down: try checkpoint.linear(prefix + "down_proj", out: output, input: intermediate))
    }
}
