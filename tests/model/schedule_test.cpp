#include "parallax/model/schedule.h"

#include <gtest/gtest.h>

TEST(Schedule, Placeholder) { EXPECT_EQ(parallax::model::stage_order(parallax::Layout::GPIPE, 2, 1, 2, 0).size(), 4u); }
