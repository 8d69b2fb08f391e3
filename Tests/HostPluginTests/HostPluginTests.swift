import PierTestSupport
import Testing
