import Foundation
import XCTest
@testable import IdeficsImages

/// Full-size photos end to end. Meant for `swift test -c release` (they also pass, slowly, in debug builds).
final class ReleaseScaleTests: XCTestCase {
    func testFullSizePhotosAndTimings() throws {
        for (input, expected) in [("inputs/rocket.jpg", "expected/rocket.jpg.png"),
                                  ("inputs/coffee.png", "expected/coffee.png.png")] {
            let bytes = try ImageFixtures.bytes(input)
            var start = Date()
            let image = try ImageDecoder.decode(bytes, source: input).rgb()
            let decodeTime = Date().timeIntervalSince(start)
            XCTAssertTrue(image == (try ImageFixtures.rgb(expected)), input)
            start = Date()
            let processed = try Idefics2ImageProcessor().process(image, overrides: .init(doImageSplitting: true))
            let processTime = Date().timeIntervalSince(start)
            XCTAssertEqual(processed.count, 5)
            print(String(format: "%@ %dx%d: decode %.1f ms, split+resize+normalize %.1f ms", input, image.width,
                         image.height, decodeTime * 1000, processTime * 1000))
        }
    }
}
