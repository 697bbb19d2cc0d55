// Catch2's main, compiled once into stadtportal_test_main.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
