import NameService
import Testing
