import CPierShim
import Glibc
import Testing

/// CPierShim defines the math functions the standard library references, so that release
/// plugins load no libm.so (Sources/CPierShim/libm.c): `ceil` computed, the others forwarded
/// to libm.so.6. This process links them too; libm's own answers come through dlsym.
@Suite struct ShimMathTests {
    private static func libm<Function>(_ name: String, as type: Function.Type) throws -> Function {
        let handle = try #require(dlopen("libm.so.6", RTLD_NOW | RTLD_LOCAL))
        let symbol = try #require(dlsym(handle, name))
        return unsafeBitCast(symbol, to: type)
    }

    @Test func ceilIsLibmsBitForBit() throws {
        let reference = try Self.libm("ceil", as: (@convention(c) (Double) -> Double).self)
        var values: [Double] = [
            0, -0.0, 0.5, -0.5, 1, -1, 1.5, -1.5, 0x1p52, -0x1p52, 0x1p52 - 0.5, -(0x1p52 - 0.5), 0x1p53 + 2,
            1e300, -1e300, .leastNonzeroMagnitude, -.leastNonzeroMagnitude, .infinity, -.infinity,
            0.9999999999999999, -0.9999999999999999, 9.3e18, -9.3e18,
        ]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            values.append(Double(bitPattern: generator.next()))
            values.append(Double.random(in: -1e6...1e6, using: &generator))
        }
        for value in values where !value.isNaN {
            #expect(ceil(value).bitPattern == reference(value).bitPattern, "ceil(\(value))")
        }
        #expect(ceil(Double.nan).isNaN)
    }

    @Test func forwardedFunctionsAnswerAsLibm() throws {
        let log10Reference = try Self.libm("log10", as: (@convention(c) (Double) -> Double).self)
        let powfReference = try Self.libm("powf", as: (@convention(c) (Float, Float) -> Float).self)
        let jnReference = try Self.libm("jn", as: (@convention(c) (Int32, Double) -> Double).self)
        for value in [0.001, 1, 2.5, 1000, 123_456.789] {
            #expect(log10(value).bitPattern == log10Reference(value).bitPattern)
            #expect(jn(3, value).bitPattern == jnReference(3, value).bitPattern)
        }
        #expect(powf(1.5, 7.25).bitPattern == powfReference(1.5, 7.25).bitPattern)
        var sign: Int32 = 0
        #expect(lgamma_r(-2.5, &sign) == lgamma(-2.5) && sign == -1)
        #expect(abs(Double(sinl(Float80(0.5))) - sin(0.5)) < 1e-15)
        #expect((2.5).rounded(.up) == 3 && (-2.5).rounded(.up) == -2)
    }
}
