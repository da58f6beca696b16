# GENERATED from hardware/boards/*.json by hardware/constants.py: do not edit by hand.
# Regenerate: .venv/bin/python -m hardware.generate   (tests/hardware fails when out of date)
"""Board constants, one class per supported board (docs/hardware.md). Pick one by name:

    from firmware import board
    pins = board.get(settings.get("board"))  # None: the default board
    machine.Pin(pins.LED_GREEN, machine.Pin.OUT)

Every class has every name; None means the board has no such part.
"""
try:
    from micropython import const
except ImportError:  # CPython
    const = lambda x: x  # noqa: E731

DEFAULT = "esp32-devkitc-pn532-uart"

# I2C addresses of the parts. MicroPython's const() names are module-wide (one value per
# name per module), so the per-board values below are plain class attributes.
ADDR_PN532 = const(0x24)
ADDR_WS1850S = const(0x28)
ADDR_DS3231 = const(0x68)


class Esp32DevkitcPn532I2c:
    NAME = "esp32-devkitc-pn532-i2c"
    CHIP = "esp32"
    READER = "PN532"
    READER_BUS = "i2c"
    READER_ADDR = ADDR_PN532
    READER_UART = None
    READER_TX = None
    READER_RX = None
    READER_BAUD = None
    SPI_ID = None
    SPI_SCK = None
    SPI_MOSI = None
    SPI_MISO = None
    SPI_BAUD = None
    READER_CS = None
    READER_RST = 4
    I2C_ID = 0
    I2C_SDA = 21
    I2C_SCL = 22
    I2C_FREQ = 100000
    RTC = True
    RTC_ADDR = ADDR_DS3231
    LED = "gpio"
    LED_GREEN = 25
    LED_RED = 26
    LED_RGB = None
    LED_COUNT = None
    BUZZER = 27
    BAT_ADC = 35
    BAT_RATIO = 2.0
    TAMPER = 33
    TAMPER_PULL = "internal-up"
    SOS_BUTTON = None
    SOS_PULL = None


class Esp32DevkitcPn532Spi:
    NAME = "esp32-devkitc-pn532-spi"
    CHIP = "esp32"
    READER = "PN532"
    READER_BUS = "spi"
    READER_ADDR = None
    READER_UART = None
    READER_TX = None
    READER_RX = None
    READER_BAUD = None
    SPI_ID = 2
    SPI_SCK = 18
    SPI_MOSI = 23
    SPI_MISO = 19
    SPI_BAUD = 1000000
    READER_CS = 5
    READER_RST = 4
    I2C_ID = 0
    I2C_SDA = 21
    I2C_SCL = 22
    I2C_FREQ = 100000
    RTC = True
    RTC_ADDR = ADDR_DS3231
    LED = "gpio"
    LED_GREEN = 25
    LED_RED = 26
    LED_RGB = None
    LED_COUNT = None
    BUZZER = 27
    BAT_ADC = 35
    BAT_RATIO = 2.0
    TAMPER = 33
    TAMPER_PULL = "internal-up"
    SOS_BUTTON = None
    SOS_PULL = None


class Esp32DevkitcPn532Uart:
    NAME = "esp32-devkitc-pn532-uart"
    CHIP = "esp32"
    READER = "PN532"
    READER_BUS = "uart"
    READER_ADDR = None
    READER_UART = 2
    READER_TX = 17
    READER_RX = 16
    READER_BAUD = 115200
    SPI_ID = None
    SPI_SCK = None
    SPI_MOSI = None
    SPI_MISO = None
    SPI_BAUD = None
    READER_CS = None
    READER_RST = 4
    I2C_ID = 0
    I2C_SDA = 21
    I2C_SCL = 22
    I2C_FREQ = 100000
    RTC = True
    RTC_ADDR = ADDR_DS3231
    LED = "gpio"
    LED_GREEN = 25
    LED_RED = 26
    LED_RGB = None
    LED_COUNT = None
    BUZZER = 27
    BAT_ADC = 35
    BAT_RATIO = 2.0
    TAMPER = 33
    TAMPER_PULL = "internal-up"
    SOS_BUTTON = 32
    SOS_PULL = "internal-up"


class Esp32S3DevkitcPn532Uart:
    NAME = "esp32-s3-devkitc-pn532-uart"
    CHIP = "esp32s3"
    READER = "PN532"
    READER_BUS = "uart"
    READER_ADDR = None
    READER_UART = 1
    READER_TX = 17
    READER_RX = 18
    READER_BAUD = 115200
    SPI_ID = None
    SPI_SCK = None
    SPI_MOSI = None
    SPI_MISO = None
    SPI_BAUD = None
    READER_CS = None
    READER_RST = 4
    I2C_ID = 0
    I2C_SDA = 8
    I2C_SCL = 9
    I2C_FREQ = 100000
    RTC = True
    RTC_ADDR = ADDR_DS3231
    LED = "gpio"
    LED_GREEN = 5
    LED_RED = 6
    LED_RGB = None
    LED_COUNT = None
    BUZZER = 7
    BAT_ADC = 1
    BAT_RATIO = 2.0
    TAMPER = 2
    TAMPER_PULL = "internal-up"
    SOS_BUTTON = None
    SOS_PULL = None


class M5stackAtomRfid2:
    NAME = "m5stack-atom-rfid2"
    CHIP = "esp32"
    READER = "WS1850S"
    READER_BUS = "i2c"
    READER_ADDR = ADDR_WS1850S
    READER_UART = None
    READER_TX = None
    READER_RX = None
    READER_BAUD = None
    SPI_ID = None
    SPI_SCK = None
    SPI_MOSI = None
    SPI_MISO = None
    SPI_BAUD = None
    READER_CS = None
    READER_RST = None
    I2C_ID = 0
    I2C_SDA = 26
    I2C_SCL = 32
    I2C_FREQ = 100000
    RTC = False
    RTC_ADDR = None
    LED = "ws2812"
    LED_GREEN = None
    LED_RED = None
    LED_RGB = 27
    LED_COUNT = 1
    BUZZER = None
    BAT_ADC = None
    BAT_RATIO = None
    TAMPER = 33
    TAMPER_PULL = "internal-up"
    SOS_BUTTON = None
    SOS_PULL = None


BOARDS = {
    "esp32-devkitc-pn532-i2c": Esp32DevkitcPn532I2c,
    "esp32-devkitc-pn532-spi": Esp32DevkitcPn532Spi,
    "esp32-devkitc-pn532-uart": Esp32DevkitcPn532Uart,
    "esp32-s3-devkitc-pn532-uart": Esp32S3DevkitcPn532Uart,
    "m5stack-atom-rfid2": M5stackAtomRfid2,
}


def get(name=None):
    """The constants class of board `name` (None: DEFAULT); ValueError if unknown."""
    try:
        return BOARDS[name or DEFAULT]
    except KeyError:
        raise ValueError("unknown board %r; known: " % name + ", ".join(sorted(BOARDS)))
