@testable import IdeficsModels
import XCTest

final class KVCacheShrinkTests: XCTestCase {
    /// A kept cache gives back the room its request reserved, keeping the rows it holds.
    func testShrinkToFitKeepsTheRowsAndDropsTheReservation() {
        var cache = KVCache(layers: 2, rowWidth: 4)
        cache.reserve(rows: 10_000)
        for layer in 0..<2 {
            cache.append(layer: layer, keys: (0..<12).map(Float.init)[...], values: (0..<12).map { Float(-$0) }[...])
        }
        cache.advance(by: 3)
        XCTAssertGreaterThanOrEqual(cache.keys[0].capacity, 40_000)
        cache.shrinkToFit()
        XCTAssertEqual(cache.count, 3)
        for layer in 0..<2 {
            XCTAssertEqual(cache.keys[layer], (0..<12).map(Float.init))
            XCTAssertEqual(cache.values[layer], (0..<12).map { Float(-$0) })
            XCTAssertLessThan(cache.keys[layer].capacity, 1_000)
            XCTAssertLessThan(cache.values[layer].capacity, 1_000)
        }
    }
}
