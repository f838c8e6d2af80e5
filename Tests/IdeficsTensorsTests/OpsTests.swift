import IdeficsTensors
import XCTest

final class OpsTests: XCTestCase {
    func testRMSNormScalesEachRowToUnitRootMeanSquare() {
        let y = Ops.rmsNorm([3, 4, 0, 0, 1, 1, 1, 1], weight: [1, 2, 1, 1], eps: 0)
        let rms1 = (25.0 / 4).squareRoot()
        XCTAssertEqual(y[0], Float(3 / rms1), accuracy: 1e-6)
        XCTAssertEqual(y[1], Float(2 * 4 / rms1), accuracy: 1e-6)
        XCTAssertEqual(Array(y[4...]), [1, 2, 1, 1])
    }

    func testSoftmaxIsStableForLargeLogits() {
        var values: [Float] = [1000, 1000, -Float.infinity]
        values.withUnsafeMutableBufferPointer { Ops.softmax($0.baseAddress!, count: 3) }
        XCTAssertEqual(values, [0.5, 0.5, 0])
    }

    func testRotaryEmbeddingRotatesHalvesByPositionTimesFrequency() {
        let rope = RotaryEmbedding(headDim: 4, theta: 100)
        var x: [Float] = [1, 1, 0, 0]
        rope.apply(&x, heads: 1, angles: rope.angles(positions: [3]))
        // Frequencies 1 and 1/10: pairs (x0, x2) and (x1, x3) rotate by 3 and 0.3 radians.
        XCTAssertEqual(x[0], cos(3), accuracy: 1e-6)
        XCTAssertEqual(x[2], sin(3), accuracy: 1e-6)
        XCTAssertEqual(x[1], cos(0.3), accuracy: 1e-6)
        XCTAssertEqual(x[3], sin(0.3), accuracy: 1e-6)
    }
}
